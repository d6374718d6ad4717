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
  // The same bytes as chunks of `size` (a power of two), first read first,
  // each once: a larger size merges the chunks it covers (kept where the
  // first of them was read), a smaller one splits each chunk in order. Only
  // chunks below `limit` (the blob's chunk count) are kept; *past_end (if
  // given) counts the profile's chunks that lie wholly past it.
  std::vector<uint64_t> ChunksOf(std::string_view key, uint32_t size, uint64_t limit,
                                 uint64_t* past_end = nullptr) const;
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
// Its text in the file's format.
std::string FormatAccessProfile(const AccessProfile& profile);

// Records first reads, per blob, in units of `unit` bytes (the chunk size of
// the profile it makes, whatever the cache's: a fine unit names the bytes a
// workload read, and a mount with larger chunks merges them). Thread safety:
// safe for concurrent use (one mutex, held for a hash lookup per unit).
// Memory: 16 bytes or so per unit recorded; recording stops at max_units
// (2,097,152 units of 4 KiB: 8 GiB read, ~48 MiB at most).
//
// The default unit is 4 KiB: a gzip layer's reports (TouchNeeded) then name
// the compressed bytes a read needed to 4 KiB, not to 64 KiB, so `oci-fs
// accelerate --profile` places checkpoints right before them and ships a
// profile of about the bytes a boot needs. A mount fetches such a profile in
// pieces of at least kMinPieceBytes (ProfilePrefetch), as it fetched the
// 64 KiB units before.
class AccessRecorder {
 public:
  static constexpr uint32_t kDefaultUnit = 4u << 10;
  explicit AccessRecorder(uint32_t unit = kDefaultUnit, size_t max_units = 1u << 21)
      : unit_(unit), max_units_(max_units) {}

  uint32_t unit() const { return unit_; }
  // Bytes [offset, offset + length) of `key` were read (by a reader, not read-ahead); length > 0.
  void Touch(std::string_view key, uint64_t offset, uint64_t length);
  // Bytes [offset, offset + length) of `key` were what a read needed, as its
  // decoder reports them (DecoderOptions::record_compressed: a gzip layer
  // read through an index inflates whole spans, more than a read needs).
  // From the first such call on (length 0 just starts them), Touch of `key`
  // is ignored: the decoder's reports replace the reads of its bytes.
  void TouchNeeded(std::string_view key, uint64_t offset, uint64_t length);
  // Drops `key` and ignores it from now on: a blob read as a stream (gzip
  // without an index) is read whole, in order, and its record says nothing.
  void Exclude(std::string_view key);
  // The profile so far; its chunk_size is unit().
  AccessProfile Snapshot() const;

 private:
  struct Blob {
    tsl::robin_set<uint64_t> seen;
    std::vector<uint64_t> order;
    bool excluded = false;
    bool needed_only = false;  // TouchNeeded was called: Touch is ignored
  };
  void Add(std::string_view key, uint64_t offset, uint64_t length, bool needed);
  const uint32_t unit_;
  const size_t max_units_;
  mutable std::mutex mu_;
  std::map<std::string, Blob, std::less<>> blobs_;  // guarded by mu_
  size_t total_ = 0;                                // guarded by mu_
};

}  // namespace ocifs
