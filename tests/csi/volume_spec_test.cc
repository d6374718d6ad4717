#include <catch2/catch.hpp>

#include <tuple>
#include <vector>

#include "csi/volume_spec.h"

using namespace ocifs;

namespace {
PublishArgs Inline(std::map<std::string, std::string> ctx) {
  PublishArgs a;
  a.volume_id = "csi-abc";
  a.target_path = "/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/disk/mount";
  a.has_capability = true;
  a.access_mode = AccessMode::kSingleNodeWriter;
  ctx["csi.storage.k8s.io/ephemeral"] = "true";
  ctx["csi.storage.k8s.io/pod.name"] = "vm";
  a.volume_context = std::move(ctx);
  return a;
}
PublishArgs Pv(AccessMode mode) {
  PublishArgs a;
  a.volume_id = "registry.example/disks/fedora:40";
  a.target_path = "/t";
  a.has_capability = true;
  a.access_mode = mode;
  return a;
}
}  // namespace

TEST_CASE("an inline volume takes its image and attributes from the volume context") {
  auto spec = ParseVolumeSpec(Inline({{"image", "reg/disk:v1"}, {"mode", "tree"},
                                      {"diskPath", "disk/x.qcow2"}, {"tlsVerify", "false"},
                                      {"platform", "linux/arm64"}}));
  REQUIRE(spec.ok());
  CHECK(spec->ephemeral);
  CHECK(spec->image == "reg/disk:v1");
  // The mount's attributes, and only those (kubelet's keys and the image are not).
  CHECK(spec->attributes == std::map<std::string, std::string>{{"mode", "tree"},
                                                               {"diskPath", "disk/x.qcow2"},
                                                               {"platform", "linux/arm64"},
                                                               {"tlsVerify", "false"}});
}

TEST_CASE("volume attributes control the background fetch and the image's profile") {
  auto spec = ParseVolumeSpec(Inline({{"image", "reg/disk:v1"}, {"prefetchAll", "true"},
                                      {"prefetchRate", "20M"}, {"profile", "none"}, {"clusterCache", "off"}}));
  REQUIRE(spec.ok());
  CHECK(spec->attributes == std::map<std::string, std::string>{
                                {"prefetchAll", "true"}, {"prefetchRate", "20M"}, {"profile", "none"},
                                {"clusterCache", "off"}});
  for (auto [key, value, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"prefetchAll", "yes", "prefetchAll must be"},
           {"prefetchRate", "fast", "prefetchRate must be bytes per second"},
           {"profile", "/node/file", "profile must be \"image\" or \"none\""},
           {"clusterCache", "false", "clusterCache must be \"on\" or \"off\""}}) {
    auto bad = ParseVolumeSpec(Inline({{"image", "reg/disk:v1"}, {key, value}}));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == Code::kInvalidArgument);
    CHECK(bad.status().message().find(says) != std::string::npos);
  }
}

TEST_CASE("an inline volume without an image is refused") {
  auto spec = ParseVolumeSpec(Inline({}));
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == Code::kInvalidArgument);
  CHECK(spec.status().message().find("image") != std::string::npos);
}

TEST_CASE("an inline volume is accepted whatever its access mode") {
  auto args = Inline({{"image", "reg/disk:v1"}});
  args.access_mode = AccessMode::kMultiNodeMultiWriter;
  CHECK(ParseVolumeSpec(args).ok());
}

TEST_CASE("a PV's image is its volume handle and it must be read-only") {
  auto spec = ParseVolumeSpec(Pv(AccessMode::kMultiNodeReaderOnly));
  REQUIRE(spec.ok());
  CHECK_FALSE(spec->ephemeral);
  CHECK(spec->image == "registry.example/disks/fedora:40");
  CHECK(spec->attributes.empty());  // mode disk, the default
  CHECK(ParseVolumeSpec(Pv(AccessMode::kSingleNodeReaderOnly)).ok());
  for (auto mode : {AccessMode::kSingleNodeWriter, AccessMode::kMultiNodeMultiWriter,
                    AccessMode::kSingleNodeSingleWriter, AccessMode::kUnknown}) {
    auto bad = ParseVolumeSpec(Pv(mode));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == Code::kInvalidArgument);
    CHECK(bad.status().message().find("read-only") != std::string::npos);
  }
}

TEST_CASE("block volumes, bad attributes and missing fields are refused") {
  auto block = Pv(AccessMode::kMultiNodeReaderOnly);
  block.block = true;
  CHECK(ParseVolumeSpec(block).status().code() == Code::kInvalidArgument);
  CHECK_FALSE(ParseVolumeSpec(Inline({{"image", "r/d"}, {"mode", "block"}})).ok());
  CHECK_FALSE(ParseVolumeSpec(Inline({{"image", "r/d"}, {"tlsVerify", "yes"}})).ok());
  auto typo = ParseVolumeSpec(Inline({{"image", "r/d"}, {"diskpath", "x"}}));
  REQUIRE_FALSE(typo.ok());
  CHECK(typo.status().message().find("diskpath") != std::string::npos);
  auto no_cap = Pv(AccessMode::kMultiNodeReaderOnly);
  no_cap.has_capability = false;
  CHECK_FALSE(ParseVolumeSpec(no_cap).ok());
  auto relative = Pv(AccessMode::kMultiNodeReaderOnly);
  relative.target_path = std::string("t");  // not a const char*: GCC 12 -O3 sees a false -Wrestrict in that assign
  CHECK_FALSE(ParseVolumeSpec(relative).ok());
  CHECK_FALSE(ParseVolumeSpec(Inline({{"image", "--creds=x"}})).ok());
}

TEST_CASE("a repeated publish is the same volume; another image is not") {
  auto a = ParseVolumeSpec(Inline({{"image", "reg/disk:v1"}}));
  auto b = ParseVolumeSpec(Inline({{"image", "reg/disk:v1"}}));
  auto c = ParseVolumeSpec(Inline({{"image", "reg/disk:v2"}}));
  REQUIRE((a.ok() && b.ok() && c.ok()));
  CHECK(a->SameAs(*b));
  CHECK_FALSE(a->SameAs(*c));
}
