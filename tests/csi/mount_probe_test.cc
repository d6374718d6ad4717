#include <sys/statvfs.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "csi/mount_probe.h"

using namespace ocifs;

TEST_CASE("a plain directory is not mounted; a missing one is missing") {
  char tmpl[] = "/tmp/ocifs-csi-probe-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  CHECK(ProbeMount(dir) == MountProbeState::kNotMounted);
  CHECK_FALSE(IsMountPoint(dir));
  CHECK(ProbeMount(dir + "/nope") == MountProbeState::kMissing);
  std::filesystem::remove(dir);
}

TEST_CASE("the root and /proc are mount points") {
  std::string type;
  CHECK(IsMountPoint("/proc", &type));
  CHECK(type == "proc");
  CHECK(IsMountPoint("/proc/"));
  CHECK(ProbeMount("/proc") == MountProbeState::kHealthy);
}

TEST_CASE("no mount process serves a directory that is not mounted") {
  CHECK_FALSE(FindMountProcess("/nonexistent/target").has_value());
}

TEST_CASE("probing many paths at once answers each in order") {
  char tmpl[] = "/tmp/ocifs-csi-probe-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::vector<MountProbeState> states = ProbeMounts({dir, "/proc", dir + "/nope", "/proc"});
  REQUIRE(states.size() == 4);
  CHECK(states[0] == MountProbeState::kNotMounted);
  CHECK(states[1] == MountProbeState::kHealthy);
  CHECK(states[2] == MountProbeState::kMissing);
  CHECK(states[3] == MountProbeState::kHealthy);
  CHECK(ProbeMounts({}).empty());
  std::filesystem::remove(dir);
}

TEST_CASE("a healthy mount's probe carries its statvfs numbers; other states none") {
  const MountProbe root = ProbeMountWithUsage("/");
  REQUIRE(root.state == MountProbeState::kHealthy);
  REQUIRE(root.usage.has_value());
  struct statvfs here;
  REQUIRE(::statvfs("/", &here) == 0);
  CHECK(root.usage->f_blocks == here.f_blocks);
  CHECK(root.usage->f_files == here.f_files);
  CHECK((root.usage->f_frsize ? root.usage->f_frsize : root.usage->f_bsize) > 0);

  char tmpl[] = "/tmp/ocifs-csi-probe-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const MountProbe plain = ProbeMountWithUsage(dir);
  CHECK(plain.state == MountProbeState::kNotMounted);
  CHECK_FALSE(plain.usage.has_value());
  const MountProbe missing = ProbeMountWithUsage(dir + "/nope");
  CHECK(missing.state == MountProbeState::kMissing);
  CHECK_FALSE(missing.usage.has_value());
  std::filesystem::remove(dir);
}
