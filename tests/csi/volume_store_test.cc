#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "csi/volume_store.h"
#include "testing/temp_dir.h"

using namespace ocifs;
namespace fs = std::filesystem;

using ocifs::testing::TempDir;

namespace {

VolumeRecord Sample(std::string target) {
  VolumeRecord r;
  r.spec.volume_id = "csi-1";
  r.spec.target_path = std::move(target);
  r.spec.image = "127.0.0.1:5000/disk:v1";
  r.spec.attributes = {{"mode", "tree"}, {"tlsVerify", "false"}, {"prefetchAll", "true"},
                       {"prefetchRate", "4M"}, {"profile", "none"}, {"clusterCache", "off"}};
  r.spec.ephemeral = true;
  r.digest = "sha256:abcd";
  r.auth_file = "/state/secrets/x.json";
  r.mount_pid = 42;
  r.accel = "127.0.0.1:5000/disk@sha256:ef01";
  return r;
}
}  // namespace

TEST_CASE("a volume record survives a JSON round trip") {
  VolumeRecord r = Sample("/t/a");
  auto back = RecordFromJson(RecordToJson(r));
  REQUIRE(back.ok());
  CHECK(back->spec.SameAs(r.spec));
  CHECK(back->spec.ephemeral);
  CHECK(back->digest == r.digest);
  CHECK(back->auth_file == r.auth_file);
  CHECK(back->mount_pid == 42);
  CHECK(back->accel == r.accel);
  CHECK(r.PinnedRef() == "127.0.0.1:5000/disk:v1@sha256:abcd");
}

TEST_CASE("a record written before attributes were kept as given reads as the same attributes") {
  auto old = RecordFromJson(R"({"version": 1, "volumeId": "csi-1", "targetPath": "/t/a",
      "image": "127.0.0.1:5000/disk:v1", "digest": "sha256:abcd", "diskPath": "", "mode": "tree",
      "platform": "", "tlsVerify": false, "ephemeral": true, "authFile": "/state/secrets/x.json",
      "mountPid": 42, "prefetchAll": true, "prefetchRate": "4M", "imageProfile": false,
      "clusterCache": false})");
  REQUIRE(old.ok());
  CHECK(old->spec.SameAs(Sample("/t/a").spec));
  auto plain = RecordFromJson(R"({"version": 1, "volumeId": "v", "targetPath": "/t", "image": "r/d",
      "digest": "sha256:ab", "diskPath": "", "mode": "disk", "platform": "", "tlsVerify": null,
      "prefetchAll": false, "prefetchRate": "", "imageProfile": true, "clusterCache": true})");
  REQUIRE(plain.ok());
  CHECK(plain->spec.attributes.empty());
}

TEST_CASE("a record that names a digest already is pinned as it is") {
  VolumeRecord r = Sample("/t");
  r.spec.image = "reg/disk@sha256:ffff";
  CHECK(r.PinnedRef() == "reg/disk@sha256:ffff");
}

TEST_CASE("malformed records are refused") {
  CHECK_FALSE(RecordFromJson("not json").ok());
  CHECK_FALSE(RecordFromJson("{\"version\": 1}").ok());
  CHECK_FALSE(RecordFromJson("{\"version\": 2, \"volumeId\": \"a\"}").ok());
}

TEST_CASE("the store saves, lists and removes records by target") {
  TempDir dir;
  VolumeStore store(dir.path());
  REQUIRE(store.Init().ok());
  CHECK((fs::status(dir / "secrets").permissions() & fs::perms::group_all) == fs::perms::none);
  REQUIRE(store.Save(Sample("/t/a")).ok());
  REQUIRE(store.Save(Sample("/t/b")).ok());
  REQUIRE(store.Save(Sample("/t/a")).ok());  // overwrite
  std::ofstream(dir / "volumes/junk.json") << "{";
  CHECK(store.LoadAll().size() == 2);
  REQUIRE(store.Remove("/t/a").ok());
  REQUIRE(store.Remove("/t/a").ok());
  auto left = store.LoadAll();
  REQUIRE(left.size() == 1);
  CHECK(left[0].spec.target_path == "/t/b");
  CHECK(store.AuthFilePath("/t/a") != store.AuthFilePath("/t/b"));
}
