#include <catch2/catch.hpp>

#include <algorithm>

#include "csi/mount_launcher.h"

using namespace ocifs;

namespace {
VolumeRecord Record() {
  VolumeRecord r;
  r.spec.volume_id = "v";
  r.spec.target_path = "/t/mount";
  r.spec.image = "reg:5000/disk:v1";
  r.spec.mode = "disk";
  r.digest = "sha256:aa";
  return r;
}
LauncherConfig Config() {
  LauncherConfig c;
  c.oci_fs_binary = "/usr/bin/oci-fs";
  c.cache_dir = "/var/cache/oci-fs";
  c.cert_dir = "/etc/oci-fs/certs.d";
  c.authfile = "/etc/oci-fs/auth.json";
  return c;
}
}  // namespace

TEST_CASE("inspect runs with the node's registry options") {
  MountLauncher launcher(Config());
  auto argv = launcher.InspectArgv(Record());
  CHECK(argv == std::vector<std::string>{"/usr/bin/oci-fs", "inspect", "--authfile",
                                         "/etc/oci-fs/auth.json", "--cert-dir",
                                         "/etc/oci-fs/certs.d", "--json", "reg:5000/disk:v1"});
}

TEST_CASE("mount pins the digest, shares the cache and is read-only") {
  MountLauncher launcher(Config());
  VolumeRecord r = Record();
  r.spec.mode = "tree";
  r.spec.disk_path = "disk/a.img";
  r.spec.platform = "linux/arm64";
  r.spec.tls_verify = false;
  r.auth_file = "/state/secrets/1.json";
  auto argv = launcher.MountArgv(r);
  CHECK(argv == std::vector<std::string>{
                    "/usr/bin/oci-fs", "mount", "--authfile", "/state/secrets/1.json",
                    "--cert-dir", "/etc/oci-fs/certs.d", "--tls-verify=false", "--platform",
                    "linux/arm64", "--cache-dir", "/var/cache/oci-fs", "--mode", "tree",
                    "--disk-path", "disk/a.img", "-o", "ro,allow_other",
                    "reg:5000/disk:v1@sha256:aa", "/t/mount"});
}

TEST_CASE("mount passes the volume's prefetch attributes") {
  MountLauncher launcher(Config());
  VolumeRecord r = Record();
  r.spec.prefetch_all = true;
  r.spec.prefetch_rate = "8M";
  r.spec.image_profile = false;
  r.spec.cluster_cache = false;
  auto argv = launcher.MountArgv(r);
  const std::vector<std::string> want{"--prefetch-all", "--prefetch-rate", "8M", "--prefetch-profile", "none",
                                      "--cluster-cache", "off"};
  CHECK(std::search(argv.begin(), argv.end(), want.begin(), want.end()) != argv.end());
}

TEST_CASE("a failing oci-fs becomes a Status with its message") {
  LauncherConfig c = Config();
  c.oci_fs_binary = "/bin/false";
  MountLauncher launcher(c);
  auto digest = launcher.ResolveDigest(Record());
  REQUIRE_FALSE(digest.ok());
  CHECK(digest.status().message().find("resolve reg:5000/disk:v1") != std::string::npos);
}
