// oci-fs mount: serve an image's VM disk (or whole tree) through FUSE.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/common_flags.h"

namespace ocifs {

struct MountFlags {
  CommonFlags common;
  std::string reference;
  std::string mountpoint;
  bool foreground = false;
  std::string mode = "disk";  // disk | tree
  std::string disk_path;
  std::string cache_dir;      // default: DefaultCacheDir()
  std::string cache_size = "10G";
  std::string memory_cache = "8M";
  std::string chunk_size = "1M";   // the cache's unit of fetch and storage
  std::string readahead = "4M";    // largest read-ahead window; 0 = off
  std::string miss_fetch = "exact";     // a small read's miss: exact (its bytes first) or chunk
  std::string cluster_cache = "on";     // keep decompressed qcow2 clusters in the cache dir: on | off
  std::string decode_threads = "auto";  // decompression threads: auto (one per core) or 0..64
  bool prefetch_all = false;       // fetch the whole layer in the background
  std::string prefetch_rate = "0";  // cap of that fetch, bytes per second; 0 = none
  std::string stats_file;
  std::string prefetch_profile;  // an access profile to fetch ahead (docs/profile-format.md)
  std::string record_profile;    // where to write this mount's access profile at unmount
  bool allow_other = false;
  std::vector<std::string> options;  // -o, comma-separated lists
};

// /var/cache/oci-fs for root, else $XDG_CACHE_HOME/oci-fs (~/.cache/oci-fs).
std::string DefaultCacheDir();

void AddMountCommand(CLI::App* app, MountFlags* flags, int* exit_code);

// Applies `-o` options (mount(8) style) to the flags; unknown options are an
// error, mount(8)'s generic ones (rw, defaults, _netdev, ...) are ignored.
[[nodiscard]] Status ApplyMountOptions(MountFlags* flags, std::vector<std::string>* fuse_options);

}  // namespace ocifs
