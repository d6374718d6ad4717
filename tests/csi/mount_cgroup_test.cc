// MountCgroups without a cgroup hierarchy: disabled is a no-op, and a
// directory that is not in cgroup v2 is refused with a message naming it.
// The real moves are tested in tests/csi/test_csi_cgroup.py.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "csi/mount_cgroup.h"
#include "csi/volume_store.h"

using namespace ocifs;

TEST_CASE("a disabled MountCgroups does nothing") {
  MountCgroups none("");
  CHECK_FALSE(none.enabled());
  CHECK(none.Init().ok());
  CHECK(none.Create("/var/lib/kubelet/pods/x/mount").ok());
  CHECK(none.MoveFor("/t").procs_path.empty());
  CHECK(none.Remove("/t").ok());
  CHECK(none.RemoveOrphans({}) == 0);
}

TEST_CASE("--mount-cgroup outside a cgroup v2 hierarchy is refused") {
  auto dir = std::filesystem::temp_directory_path() / ("ocifs-cg-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  MountCgroups cgroups(dir.string());
  Status s = cgroups.Init();
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find(dir.string()) != std::string::npos);
  CHECK(s.message().find("cgroup v2") != std::string::npos);
  std::filesystem::remove_all(dir);

  MountCgroups relative("oci-fs-mounts");
  CHECK(relative.Init().code() == Code::kInvalidArgument);
}

TEST_CASE("a volume's cgroup is named after its target's record") {
  MountCgroups cgroups("/sys/fs/cgroup/oci-fs-mounts");
  const std::string target = "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/disk/mount";
  CHECK(cgroups.PathFor(target) == "/sys/fs/cgroup/oci-fs-mounts/" + TargetKey(target));
  CHECK(TargetKey(target).size() == 16);
  CHECK(cgroups.MoveFor(target).procs_path == cgroups.PathFor(target) + "/cgroup.procs");
  CHECK(cgroups.PathFor(target) != cgroups.PathFor(target + "2"));
}
