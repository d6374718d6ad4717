// GzipFirstPass: the first sequential pass over a gzip layer whose index is
// not saved yet. It inflates the layer in order (GzipIndexer: CRCs verified,
// a checkpoint about every spacing bytes) as a BackgroundPass on the mount's
// scheduler, and fills its GzipSource's state as it goes: the checkpoint
// table, the pass's progress (readers behind it read, readers ahead wait), the
// runs of zeros it sees, and the segment cache (each span it closes). It also
// computes the CRC-32 of each 64 KiB block of the output, for the index's
// checksums. With DecoderOptions::checkpoint_targets it places extra
// checkpoints before them (GzipTargetPlacer). When it completes, it saves
// the index (if DecoderOptions::index_path is set).
//
// With DecoderOptions::pass_lease_path, the pass streams the layer only while
// it holds that lease (TryLockFile): when another process holds it (it
// streams the same layer into the same cache dir), the pass waits for it
// and then adopts the index that process saved (Target::adopt_saved_index)
// instead of streaming: N mounts of one layer inflate it once. If there is
// no index then (that process died or failed), this pass takes the lease and
// streams the layer itself. While it waits, following() is true: the source
// serves reads from what that process's pass publishes (PassOutputFollower).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/unique_fd.h"
#include "decode/background_pass.h"
#include "decode/decoder.h"
#include "decode/gzip_checkpoints.h"
#include "decode/pass_output_keeper.h"
#include "decode/pass_progress.h"
#include "decode/segment_cache.h"
#include "decode/zero_ranges.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: safe for concurrent use. Locks: span_mu_ (the open span) is
// a leaf; the pass never holds it while taking the checkpoint table's,
// the progress's, the zero ranges' or the segment cache's lock, and readers
// call CopyFromOpenSpan holding none of them.
// Ownership: borrows everything in Target, which must outlive the pass. The
// destructor cancels the pass (the progress fails with kCancelled if it was
// not complete) and waits for it (at most one compressed range read later).
class GzipFirstPass {
 public:
  // The GzipSource's state the pass fills in.
  struct Target {
    const ByteSource& compressed;
    const DecoderOptions& options;  // checkpoint_spacing, segment_cache_bytes, index_path, scheduler
    GzipCheckpoints& checkpoints;
    PassProgress& progress;  // followed: it starts the pass for a reader who must wait
    ZeroRanges& zeros;
    SegmentCache& cache;
    PassOutputKeeper* keeper = nullptr;  // keeps the output for reads behind the frontier; null: none
    // Installs the index saved at options.index_path in the source if it is
    // valid for this blob and returns the stream's size; nullopt if not
    // (nothing installed). Called on the pass's thread before any output,
    // while readers wait on the progress. Null: never adopt.
    std::function<std::optional<uint64_t>()> adopt_saved_index;
  };

  explicit GzipFirstPass(const Target& target);
  GzipFirstPass(const GzipFirstPass&) = delete;
  GzipFirstPass& operator=(const GzipFirstPass&) = delete;

  // Posts the pass on the scheduler (idempotent).
  void Start() { pass_.Start(); }

  // Who runs the layer's pass: not known yet (the pass has not tried the
  // lease), another process (this pass waits for its index), or this one
  // (streaming, or the index is adopted or the pass is over).
  enum class Role : uint8_t { kUndecided, kFollowing, kOwn };
  Role role() const { return role_.load(std::memory_order_acquire); }
  bool started() const { return pass_.started(); }

  // Copies bytes [from, from + out.size()) of span `index` (offsets in the
  // span) into `out` if the pass is producing that span, holds those bytes
  // and the span fits the segment cache; false otherwise. Readers right behind
  // the frontier read them here, not inflating their span again per read.
  bool CopyFromOpenSpan(size_t index, uint64_t from, std::span<uint8_t> out) const;

 private:
  void Run();
  // With a pass lease: takes it, waiting while another process holds it, and
  // adopts that process's saved index. True if the pass is over (adopted, or
  // cancelled while waiting: the progress then says so); false to stream,
  // holding *lease (invalid if the lease file cannot be used).
  bool FollowOtherPass(UniqueFd* lease);
  // The pass's checkpoint: the previous span closes, this one opens.
  void OnCheckpoint(GzipCheckpoint checkpoint);
  void OnOutput(uint64_t out, std::span<const uint8_t> data);
  // Closes the open span (needs span_mu_); returns it, to cache, if it was kept.
  std::pair<size_t, SegmentCache::Buffer> CloseSpanLocked();
  // The pass completed: the layer is `size` bytes, with these checksums of
  // its blocks. Saves the index (version 3).
  void SaveIndex(uint64_t size, uint32_t block_size, std::vector<uint32_t> block_crcs);

  const Target t_;
  mutable std::mutex span_mu_;  // guards the open span: a leaf lock
  // The span the pass is producing (from its checkpoint's out to the
  // frontier), while it fits the segment cache.
  std::vector<uint8_t> open_span_;
  size_t open_index_ = 0;
  uint64_t open_out_ = 0;   // where the open span starts (its checkpoint's out)
  uint64_t frontier_ = 0;   // output produced so far
  bool open_valid_ = false;
  std::atomic<Role> role_{Role::kUndecided};
  BackgroundPass pass_;  // last: cancelled and waited for first (Run uses the members above)
};

}  // namespace ocifs
