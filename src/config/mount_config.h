// MountConfig: everything one `oci-fs mount` is asked to do, typed: sizes in
// bytes, choices as enums, host paths absolute. The CLI flags, the `-o`
// options and the CSI volume attributes all produce it through one table of
// options (config/option_table.h, config/config_builder.h); Validate checks
// the rules between fields.
//
// Plain value type. Holds a secret (creds): never log, print or pass it in
// argv (ToArgs leaves it out; messages never quote it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ocifs/status.h"
#include "registry/registry_options.h"

namespace ocifs {

enum class MountMode { kDisk, kTree };          // DIR/disk.img | the whole merged tree
enum class MissFetch { kExact, kChunk };        // a small miss waits for its own bytes | its chunk
enum class ClusterCacheMode { kOn, kOff };    // keep inflated clusters in the cache dir
enum class ProfileSource { kImage, kNone, kFile };  // the image's own profile | none | profile_file

// How the user wrote one option: "--chunk-size", "-o chunk_size" or
// "volume attribute chunkSize", and the value as given ("" for a secret).
struct Spelled {
  std::string option;
  std::string value;
  bool volume_attribute = false;  // quote as CSI messages do ("x", not 'x')
};

struct MountConfig {
  // Registry access (RegistryOptions).
  std::string creds;     // "USER:PASS" from --creds only; never logged or passed on
  std::string authfile;  // absolute; "" = the default search
  std::string cert_dir;  // absolute; "" = none
  bool tls_verify = true;
  std::string platform;  // "os/arch[/variant]"; "" = the host's
  std::string registries_conf;    // absolute; "" = /etc/containers/registries.conf (+ .d)
  long stall_timeout = 10;        // seconds without a byte before a request is retried
  long registry_timeout = 20;     // seconds one registry operation may wait without progress
  // Logging.
  std::string log_level = "warn";
  std::string log_file;  // absolute; "" = stderr
  // The mount.
  MountMode mode = MountMode::kDisk;
  std::string disk_path;  // inside the image; "" = the one file under disk/
  std::string disk_name;  // a bare disk layer's name or title (--disk); "" = the only one
  std::string cache_dir;  // absolute; "" = DefaultCacheDir()
  uint64_t cache_size = 10ull << 30;   // bytes
  uint64_t memory_cache = 2ull << 20;  // bytes of inflated qcow2 clusters in memory (the kept-piece file holds the rest)
  uint64_t chunk_size = 1ull << 20;    // bytes; a power of two, kMinChunkSize..kMaxChunkSize
  uint64_t readahead = 4ull << 20;     // largest read-ahead window, bytes; 0 = off
  MissFetch miss_fetch = MissFetch::kExact;
  ClusterCacheMode cluster_cache = ClusterCacheMode::kOn;
  std::optional<uint32_t> decode_threads;  // nullopt = auto (one per core); 0..kMaxDecodeThreads
  bool prefetch_all = false;
  uint64_t prefetch_rate = 0;  // bytes per second; 0 = no cap
  ProfileSource profile = ProfileSource::kImage;
  std::string profile_file;    // absolute, when profile == kFile
  std::string record_profile;  // absolute; "" = do not record
  // The acceleration artifact (docs/accel-format.md): "auto" (look it up next
  // to the image), "off", or a pinned one, "REGISTRY/REPO@sha256:..".
  std::string accel = "auto";
  std::string stats_file;      // absolute; "" = none
  bool allow_other = false;
  std::vector<std::string> fuse_options;  // -o options forwarded to FUSE (nodev, noatime, ...)

  // Option name (its flag without "--") -> how it was set; for messages.
  std::map<std::string, Spelled> spelled;

  static constexpr uint64_t kMinChunkSize = 64ull << 10;
  static constexpr uint64_t kMaxChunkSize = 16ull << 20;
  static constexpr uint32_t kMaxDecodeThreads = 64;
};

// The rules between and within fields (chunk size a power of two from 64K to
// 16M, at most 64 decode threads, creds USER:PASS). kInvalidArgument naming
// the option as the user spelled it, e.g. "-o chunk_size must be a power of
// two from 64K to 16M, not '3M'".
[[nodiscard]] Status Validate(const MountConfig& config);

// Makes every host path of `config` absolute, relative to `cwd`, normalized.
void MakePathsAbsolute(MountConfig* config, const std::string& cwd);

// The registry options the config asks for.
RegistryOptions ToRegistryOptions(const MountConfig& config);

// /var/cache/oci-fs for root, else $XDG_CACHE_HOME/oci-fs (~/.cache/oci-fs).
std::string DefaultCacheDir();

// "1G", "512M", "64K" for exact multiples of 1024, else the number of bytes:
// text that ParseSize reads back to `bytes`.
std::string FormatSize(uint64_t bytes);

}  // namespace ocifs
