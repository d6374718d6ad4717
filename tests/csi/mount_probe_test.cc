#include <catch2/catch.hpp>
#include <filesystem>

#include "csi/mount_probe.h"

using namespace ocifs;

TEST_CASE("a plain directory is not mounted; a missing one is missing") {
  char tmpl[] = "/tmp/ocifs-csi-probe-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  CHECK(ProbeMount(dir) == MountState::kNotMounted);
  CHECK_FALSE(IsMountPoint(dir));
  CHECK(ProbeMount(dir + "/nope") == MountState::kMissing);
  std::filesystem::remove(dir);
}

TEST_CASE("the root and /proc are mount points") {
  std::string type;
  CHECK(IsMountPoint("/proc", &type));
  CHECK(type == "proc");
  CHECK(IsMountPoint("/proc/"));
  CHECK(ProbeMount("/proc") == MountState::kHealthy);
}

TEST_CASE("no mount process serves a directory that is not mounted") {
  CHECK_FALSE(FindMountProcess("/nonexistent/target").has_value());
}

TEST_CASE("probing many paths at once answers each in order") {
  char tmpl[] = "/tmp/ocifs-csi-probe-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::vector<MountState> states = ProbeMounts({dir, "/proc", dir + "/nope", "/proc"});
  REQUIRE(states.size() == 4);
  CHECK(states[0] == MountState::kNotMounted);
  CHECK(states[1] == MountState::kHealthy);
  CHECK(states[2] == MountState::kMissing);
  CHECK(states[3] == MountState::kHealthy);
  CHECK(ProbeMounts({}).empty());
  std::filesystem::remove(dir);
}
