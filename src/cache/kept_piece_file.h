// KeptPieceFile: a DecodedChunkStore that keeps one disk's decompressed
// pieces (inflated qcow2 clusters, a raw disk's 64 KiB pieces) in ONE sparse
// file of the cache directory, dir/kept/<key> (docs/cache-format.md, "Kept
// pieces"; the layout is in kept_piece_format.h). Keeping a piece is two
// pwrites into that file, its bytes and then its table entry: no file is
// created per piece, so the reader that decompressed it keeps it inline.
//
// Crash safety: a piece's bytes are written before its entry, and an entry
// holds the CRC-32 of the bytes (and a CRC of its own, bound to the key).
// Get checks the bytes against it every time; a piece that fails (torn or lost
// by a power loss, damaged since) is a miss, and its entry is cleared on disk.
// Processes: every process keeping the same disk opens the same file; pieces
// are immutable (the key names a layer's bytes), so two processes writing one
// piece write identical bytes and identical entries, and no lock is needed.
// A process sees the pieces on disk when it opens the file, plus its own Puts;
// a piece another process keeps later is found by GetStoredByAnyone and
// GetOrClaim, which read its entry on disk on a miss (one pread of 16 bytes).
// Concurrent mounts of one disk: GetOrClaim takes the piece's claim word
// (PieceClaims, in the file's header block), so one process makes a missing
// piece and the others wait for its Put and read it (bounded waits).
// Bound and eviction: the file's allocated blocks count in the cache's usage
// like chunk files (Put adds an estimate, each scan counts st_blocks) and the
// Reclaimer evicts the file whole, ranked by its mtime (refreshed by every Put,
// and by Gets at most once per touch interval). A Put or a touching Get that
// finds the file evicted (unlinked) starts a new, empty one.
//
// Thread safety: safe for concurrent use. mu_ guards the fields it names; no
// I/O is done under it (reopen_mu_, taken before it, serialises reopening). Ownership: shares the ChunkCache it counts usage in.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include <tsl/robin_map.h>

#include "base/decoded_store.h"
#include "base/unique_fd.h"
#include "cache/chunk_cache.h"
#include "cache/kept_piece_format.h"
#include "cache/piece_claims.h"

namespace ocifs {

class KeptPieceFile final : public DecodedChunkStore {
 public:
  // Opens dir/kept/<key> of `cache`, creating it if missing (and replacing it
  // if its header is not this key's and piece size's), and reads its table.
  // piece_size: bytes, a power of two in 4 KiB..16 MiB (ValidPieceSize).
  [[nodiscard]] static Result<std::shared_ptr<KeptPieceFile>> Open(std::shared_ptr<ChunkCache> cache,
                                                                   std::string key, uint32_t piece_size);
  KeptPieceFile(const KeptPieceFile&) = delete;
  KeptPieceFile& operator=(const KeptPieceFile&) = delete;

  // Whether `bytes` may be a piece size: a power of two in 4 KiB..16 MiB (a
  // profile's 4 KiB units are kept as they are fetched; decoded pieces are
  // cache chunks or qcow2 clusters, 64 KiB and up).
  static bool ValidPieceSize(uint64_t bytes) {
    return bytes >= (4u << 10) && bytes <= (16u << 20) && (bytes & (bytes - 1)) == 0;
  }
  uint32_t chunk_size() const override { return piece_size_; }
  // One pread of the piece and a CRC check; no syscall for a piece not known.
  [[nodiscard]] Result<bool> Get(uint64_t index, std::span<uint8_t> out) const override;
  // Two pwrites (bytes, then entry); nothing if the piece is known already.
  // An I/O error (disk full, say) is returned and counted in stats().failed.
  [[nodiscard]] Status Put(uint64_t index, std::span<const uint8_t> data) const override;
  bool Contains(uint64_t index) const override;
  // Get, then, on a miss, the piece's entry read from the file (another
  // process may have kept it since this one looked).
  [[nodiscard]] Result<bool> GetStoredByAnyone(uint64_t index, std::span<uint8_t> out) const override;
  // GetStoredByAnyone, waiting first (up to claim_timeout()) while another
  // thread or process holds the piece's claim; on a miss *claim holds the
  // claim (null if it could not be taken: the wait timed out, or the file
  // has no claim words mapped).
  [[nodiscard]] Result<bool> GetOrClaim(uint64_t index, std::span<uint8_t> out,
                                        std::unique_ptr<MakeClaim>* claim) const override;
  // How long GetOrClaim waits for another claimer (a claimer that died is
  // taken over at once). Making a piece (reading its compressed bytes)
  // takes milliseconds unless it waits for the network.
  static constexpr std::chrono::milliseconds kClaimTimeout{2000};

  struct Stats {
    uint64_t hits = 0;             // Gets served
    uint64_t kept = 0;             // pieces written by Put
    uint64_t failed = 0;           // Puts that failed (I/O)
    uint64_t corrupt_dropped = 0;  // pieces that failed their CRC and were forgotten
    uint64_t found_later = 0;      // pieces another process kept, found after this one opened the file
    uint64_t claim_waits = 0;      // GetOrClaims that waited for another claimer
    uint64_t claim_timeouts = 0;   // ... and gave up waiting (the piece was then made twice)
  };
  Stats stats() const;
  const std::string& path() const { return path_; }

  // Pieces are indexed by the disk offset / piece size; the entry keeps the
  // low 32 bits, and no file grows past ext4's 16 TiB anyway.
  static constexpr uint64_t kMaxPieces = uint64_t{1} << 32;

 private:
  // The open file; replaced whole when the file was evicted.
  struct Handle {
    UniqueFd fd;
    std::unique_ptr<PieceClaims> claims;  // null if the mapping failed (no claims, only duplicates)
  };
  using HandlePtr = std::shared_ptr<const Handle>;

  KeptPieceFile(std::shared_ptr<ChunkCache> cache, std::string key, std::string path, uint32_t piece_size);
  // Opens (creating or replacing) the file; adds the bytes it created to the usage.
  Result<HandlePtr> OpenFile() const;
  // Reads every group's table block, then makes `handle` the current file
  // and what its table names the known pieces.
  void Install(HandlePtr handle) const;
  // If `seen` was unlinked (evicted), opens a new file and forgets what was
  // known; returns the current handle.
  HandlePtr ReopenIfEvicted(const HandlePtr& seen) const;
  // Clears piece `index`'s entry (on disk and in known_) after a failed check.
  void Forget(const HandlePtr& handle, uint64_t index, const KeptEntry& entry) const;
  void MaybeTouch(const HandlePtr& handle) const;
  // Reads piece `index`'s entry from `handle`'s file; if it names a piece of
  // `length` bytes, makes it known (when `handle` is still current). Whether it did.
  bool FindOnDisk(const HandlePtr& handle, uint64_t index, size_t length) const;

  const std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  const std::string path_;
  const uint32_t piece_size_;
  const uint64_t key_hash_;
  const int64_t touch_interval_ns_;

  mutable std::mutex reopen_mu_;  // held to replace an evicted file; taken before mu_
  mutable std::mutex mu_;
  mutable HandlePtr handle_;                                // guarded by mu_
  mutable tsl::robin_map<uint64_t, KeptEntry> known_;       // guarded by mu_: pieces in handle_'s file
  mutable std::unordered_set<uint64_t> groups_;             // guarded by mu_: groups with a table block
  mutable std::atomic<int64_t> last_touch_ns_{0};
  mutable std::atomic<uint64_t> hits_{0}, kept_{0}, failed_{0}, corrupt_dropped_{0};
  mutable std::atomic<uint64_t> found_later_{0}, claim_waits_{0}, claim_timeouts_{0};
};

}  // namespace ocifs
