// AccessProfile: which chunks of which blobs a workload (a VM's boot) read,
// each blob's in the order they were first read. One mount records it
// (AccessRecorder, `oci-fs mount --record-profile FILE`); a later cold mount
// fetches those chunks ahead, in that order and in parallel, before its
// reader asks (`--prefetch-profile FILE`, CachedSource). The format of the
// file is docs/profile-format.md.
//
// A profile is a hint: a chunk it names that a blob does not have is skipped,
// and one the workload does not read again costs only its fetch.
//
// Units: chunk indexes of the cache's chunk_size (chunk i covers blob bytes
// [i * chunk_size, (i + 1) * chunk_size)).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <tsl/robin_set.h>

#include "ocifs/status.h"

namespace ocifs {

struct AccessProfile {
  uint32_t chunk_size = 0;
  // blob key ("sha256:<hex>") -> its chunks, first read first, no repeats.
  std::map<std::string, std::vector<uint64_t>, std::less<>> blobs;

  // The chunks of `key` (empty if the profile does not name it).
  const std::vector<uint64_t>& ChunksOf(std::string_view key) const;
  uint64_t ChunkCount() const;
};

// Reads a profile file. kCorrupt names the file, the line and what is wrong;
// kNotFound if it does not exist.
[[nodiscard]] Result<AccessProfile> LoadAccessProfile(const std::string& path);
// Parses a profile's text; `name` stands for where it came from in errors
// ("profile NAME line 3: ...").
[[nodiscard]] Result<AccessProfile> ParseAccessProfile(const std::string& text, const std::string& name);
// Writes it atomically (a temp file beside it, then rename).
[[nodiscard]] Status SaveAccessProfile(const std::string& path, const AccessProfile& profile);

// Records first reads, per blob. Thread safety: safe for concurrent use (one
// mutex, held for a hash lookup per chunk). Memory: 16 bytes or so per chunk
// recorded; recording stops at max_chunks (a 1 MiB chunk each: 64 GiB read).
class AccessRecorder {
 public:
  explicit AccessRecorder(size_t max_chunks = 1u << 16) : max_chunks_(max_chunks) {}

  // Chunks [first, last] of `key` were read (by a reader, not read-ahead).
  void Touch(std::string_view key, uint64_t first, uint64_t last);
  // Drops `key` and ignores it from now on: a blob read as a stream (gzip
  // without an index) is read whole, in order, and its record says nothing.
  void Exclude(std::string_view key);
  AccessProfile Snapshot(uint32_t chunk_size) const;

 private:
  struct Blob {
    tsl::robin_set<uint64_t> seen;
    std::vector<uint64_t> order;
    bool excluded = false;
  };
  const size_t max_chunks_;
  mutable std::mutex mu_;
  std::map<std::string, Blob, std::less<>> blobs_;  // guarded by mu_
  size_t total_ = 0;                                // guarded by mu_
};

}  // namespace ocifs
