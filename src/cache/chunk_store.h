// ChunkStore: the chunk files on disk (storage only; no recency, no bound).
// Naming, atomic writes, checked reads, scanning and removal.
//
// Layout under `dir` (docs/cache-format.md):
//   chunks/<chunk size>/<key>/<index>          a chunk file: header + data
//   chunks/<chunk size>/<key>/.tmp-<pid>-<n>   a chunk being written
//   side/<key>.<suffix>                        per-blob side files (SidePath)
//   kept/<key>                                 a kept-piece file (KeptPieceFile; KeptPath)
//   kept/.tmp-<pid>-<n>                        a kept-piece file being created
//
// Thread and process safety: every method is const and safe for concurrent use
// by any number of threads and processes sharing `dir`. A chunk file appears
// only by rename(2) of a complete temp file and is never written in place, so
// a reader opens a complete file or none; eviction unlinks, which leaves open
// readers' data intact. A torn file (power loss without fsync) fails the
// header or data CRC and is dropped, never served.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "ocifs/status.h"

namespace ocifs {

class ChunkStore {
 public:
  // Creates dir (mode 0700, with parents), dir/chunks/<chunk_size>, dir/side
  // and dir/kept if missing. fsync: fdatasync each chunk before its rename (see the doc).
  [[nodiscard]] static Result<std::unique_ptr<ChunkStore>> Open(const std::string& dir,
                                                                uint32_t chunk_size, bool fsync);
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  enum class ReadOutcome {
    kHit,      // out holds the chunk's data, checked against its CRC
    kMiss,     // no such file (or unreadable: logged); out is unspecified
    kDropped,  // the file failed a check and was unlinked; out is unspecified
  };
  // `key` must be valid (ValidateCacheKey); out.size() is the expected data
  // length (1..chunk_size). One openat + one preadv; no allocation. On a hit
  // with `touch`, sets the file's mtime to now (the cross-process recency).
  ReadOutcome Read(std::string_view key, uint64_t index, std::span<uint8_t> out, bool touch) const;

  // Reads bytes [offset, offset + out.size()) of a chunk of `length` bytes
  // without checking the data CRC (for a chunk this process has read whole
  // and checked before: files are replaced only whole, by rename). Checks the
  // header and the file's size; true and out filled, or false (a miss: the
  // caller reads the chunk whole). One openat + one preadv + one fstat.
  bool ReadPart(std::string_view key, uint64_t index, size_t length, size_t offset, std::span<uint8_t> out,
                bool touch) const;
  // True if a file for the chunk exists (not checked: a later Read may still
  // drop it). One fstatat; for prefetch decisions.
  bool Exists(std::string_view key, uint64_t index) const;
  // Writes the chunk atomically (temp file + rename). Returns the file's size
  // in bytes (header + data). data.size() must be 1..chunk_size.
  [[nodiscard]] Result<uint64_t> Write(std::string_view key, uint64_t index,
                                       std::span<const uint8_t> data) const;

  struct FileInfo {
    std::string rel_path;  // "<chunk size>/<key>/<index>" under dir/chunks; "<key>" under dir/kept
    uint32_t chunk_size = 0;  // 0 for a kept-piece file
    std::string key;
    uint64_t index = 0;
    uint64_t bytes = 0;    // file size: header + data; a kept-piece file's allocated blocks
    int64_t mtime_ns = 0;  // wall clock, ns since the epoch
    bool kept = false;     // a kept-piece file (dir/kept), evicted whole
  };
  // Lists the chunk files of every chunk size (other caches may have used
  // another) and the kept-piece files. Unlinks temp files whose mtime is
  // before temp_cutoff_ns (pass 0 to keep all). Files that vanish while
  // scanning are skipped.
  [[nodiscard]] Result<std::vector<FileInfo>> Scan(int64_t temp_cutoff_ns) const;

  // The indexes of key's chunk files of this chunk size (one readdir, no
  // checks: a listed file may still be bad or vanish). Empty if there is none.
  std::vector<uint64_t> ListIndexes(std::string_view key) const;

  // Unlinks the file; true if this call removed it. Then removes its key
  // directory if that is now empty (a racing writer retries its mkdir).
  bool Remove(const FileInfo& file) const;

  // dir/side/<key>.<suffix>; the caller validates key and suffix.
  std::string SidePath(std::string_view key, std::string_view suffix) const;
  // dir/kept/<key>; the caller validates key.
  std::string KeptPath(std::string_view key) const;
  uint32_t chunk_size() const { return chunk_size_; }
  const std::string& dir() const { return dir_; }

 private:
  ChunkStore(std::string dir, uint32_t chunk_size, bool fsync, UniqueFd chunks_fd, UniqueFd size_fd,
             UniqueFd kept_fd)
      : dir_(std::move(dir)), chunk_size_(chunk_size), fsync_(fsync),
        chunks_fd_(std::move(chunks_fd)), size_fd_(std::move(size_fd)), kept_fd_(std::move(kept_fd)) {}
  // Adds dir/kept's files to `files` (and removes old temp files there).
  void ScanKept(int64_t temp_cutoff_ns, std::vector<FileInfo>* files) const;
  Status WriteTemp(const std::string& key_dir, std::span<const uint8_t> header,
                   std::span<const uint8_t> data, std::string* tmp_name) const;

  const std::string dir_;
  const uint32_t chunk_size_;
  const bool fsync_;
  const UniqueFd chunks_fd_;  // dir/chunks, O_DIRECTORY
  const UniqueFd size_fd_;    // dir/chunks/<chunk_size>, O_DIRECTORY
  const UniqueFd kept_fd_;    // dir/kept, O_DIRECTORY
  mutable std::atomic<uint64_t> temp_counter_{0};  // makes temp names unique in this process
};

}  // namespace ocifs
