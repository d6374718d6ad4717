#include <catch2/catch.hpp>

#include <algorithm>

#include <sys/stat.h>

#include <fstream>

#include "csi/mount_launcher.h"
#include "testing/temp_dir.h"

using namespace ocifs;

namespace {
// Strings are moved in, not assigned from literals: GCC 12's -O3 -Wrestrict
// misfires on a short literal assigned into a string here (the plain Release build).
VolumeRecord Record() {
  VolumeRecord r;
  r.spec.volume_id = std::string("v");
  r.spec.target_path = std::string("/t/mount");
  r.spec.image = std::string("reg:5000/disk:v1");
  r.digest = std::string("sha256:aa");
  return r;
}
LauncherConfig Config() {
  LauncherConfig c;
  c.oci_fs_binary = "/usr/bin/oci-fs";
  c.defaults.cache_dir = "/var/cache/oci-fs";
  c.defaults.cert_dir = "/etc/oci-fs/certs.d";
  c.defaults.authfile = "/etc/oci-fs/auth.json";
  return c;
}
}  // namespace

TEST_CASE("inspect runs with the node's registry options") {
  MountLauncher launcher(Config());
  auto argv = launcher.InspectArgv(Record());
  REQUIRE(argv.ok());
  CHECK(*argv == std::vector<std::string>{"/usr/bin/oci-fs", "inspect", "--authfile=/etc/oci-fs/auth.json",
                                          "--cert-dir=/etc/oci-fs/certs.d", "--json", "reg:5000/disk:v1"});
}

TEST_CASE("mount pins the digest, shares the cache and is read-only") {
  MountLauncher launcher(Config());
  VolumeRecord r = Record();
  r.spec.attributes = {{"mode", "tree"}, {"diskPath", "disk/a.img"}, {"platform", "linux/arm64"},
                       {"tlsVerify", "false"}};
  r.auth_file = "/state/secrets/1.json";
  auto argv = launcher.MountArgv(r);
  REQUIRE(argv.ok());
  CHECK(*argv == std::vector<std::string>{
                     "/usr/bin/oci-fs", "mount", "--authfile=/state/secrets/1.json",
                     "--cert-dir=/etc/oci-fs/certs.d", "--tls-verify=false", "--platform=linux/arm64",
                     "--cache-dir=/var/cache/oci-fs", "--mode=tree", "--disk-path=disk/a.img", "--allow-other",
                     "-o", "ro", "reg:5000/disk:v1@sha256:aa", "/t/mount"});
}

TEST_CASE("mount passes the volume's prefetch attributes") {
  MountLauncher launcher(Config());
  VolumeRecord r = Record();
  r.spec.attributes = {{"prefetchAll", "true"}, {"prefetchRate", "8M"}, {"profile", "none"}, {"clusterCache", "off"}};
  auto argv = launcher.MountArgv(r);
  REQUIRE(argv.ok());
  const std::vector<std::string> want{"--prefetch-all", "--prefetch-rate=8M", "--prefetch-profile=none",
                                      "--cluster-cache=off"};
  CHECK(std::search(argv->begin(), argv->end(), want.begin(), want.end()) != argv->end());
}

TEST_CASE("the volume's attributes override the node's defaults") {
  LauncherConfig c = Config();
  c.defaults.tls_verify = false;
  MountLauncher launcher(c);
  VolumeRecord r = Record();
  auto node = launcher.VolumeConfig(r);
  REQUIRE(node.ok());
  CHECK_FALSE(node->tls_verify);
  CHECK(node->allow_other);
  CHECK(node->authfile == "/etc/oci-fs/auth.json");
  r.spec.attributes = {{"tlsVerify", "true"}};
  r.auth_file = "/state/secrets/2.json";
  auto volume = launcher.VolumeConfig(r);
  REQUIRE(volume.ok());
  CHECK(volume->tls_verify);
  CHECK(volume->authfile == "/state/secrets/2.json");
  r.spec.attributes = {{"mode", "block"}};
  CHECK(launcher.MountArgv(r).status().code() == Code::kInvalidArgument);
  r.spec.attributes = {{"nosuch", "x"}};
  CHECK(launcher.MountArgv(r).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a failing oci-fs becomes a Status with its message") {
  LauncherConfig c = Config();
  c.oci_fs_binary = "/bin/false";
  MountLauncher launcher(c);
  auto digest = launcher.Resolve(Record());
  REQUIRE_FALSE(digest.ok());
  CHECK(digest.status().message().find("resolve reg:5000/disk:v1") != std::string::npos);
}

TEST_CASE("the artifact pinned at publish goes to the mount when the volume's accel is auto") {
  MountLauncher launcher(Config());
  VolumeRecord r = Record();
  r.accel = "reg:5000/disk@sha256:bb";
  auto argv = launcher.MountArgv(r);
  REQUIRE(argv.ok());
  CHECK(std::count(argv->begin(), argv->end(), "--accel=reg:5000/disk@sha256:bb") == 1);
  r.spec.attributes = {{"accel", "off"}};
  argv = launcher.MountArgv(r);
  REQUIRE(argv.ok());
  CHECK(std::count(argv->begin(), argv->end(), "--accel=reg:5000/disk@sha256:bb") == 0);
  CHECK(std::count(argv->begin(), argv->end(), "--accel=off") == 1);
}

TEST_CASE("resolving a volume pins the digest and the artifact inspect found, if accel is auto") {
  ocifs::testing::TempDir tmp;
  const std::string fake = tmp.path() + "/oci-fs";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\necho '{\"digest\": \"sha256:aa\", \"accel\": {\"reference\": \"reg:5000/disk@sha256:bb\"}}'\n";
  }
  REQUIRE(::chmod(fake.c_str(), 0755) == 0);
  LauncherConfig c = Config();
  c.oci_fs_binary = fake;
  MountLauncher launcher(c);
  auto pinned = launcher.Resolve(Record());
  REQUIRE(pinned.ok());
  CHECK(pinned->digest == "sha256:aa");
  CHECK(pinned->accel == "reg:5000/disk@sha256:bb");
  VolumeRecord off = Record();
  off.spec.attributes = {{"accel", "off"}};
  pinned = launcher.Resolve(off);
  REQUIRE(pinned.ok());
  CHECK(pinned->accel.empty());
}
