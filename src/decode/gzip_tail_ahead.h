// GzipTailAhead: a gzip layer's end (GzipTail), decoded in the background
// while its first pass still streams the layer, and the reads ahead of that
// pass it serves. A boot reads the end of its disk early (a qcow2's last L2
// tables); without this, such a read, and every read after it, waited for
// the whole layer.
//
// Lifecycle: Start (once; one kReadahead task on the mount's scheduler) ->
// the task decodes the tail (GzipTail::Decode) and wakes the pass's waiters ->
// reads ahead of the pass are copied from it (ServeAhead) -> dropped (its
// memory) by the first read after the pass completed.
//
// Thread safety: safe for concurrent use. tail_mu_ is a leaf lock.
// Ownership: borrows `compressed` and `progress`, which must outlive it; the
// destructor cancels the task and waits for it (at most one range read of
// GzipTail::kFetchBytes later).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "decode/gzip_tail.h"
#include "decode/pass_progress.h"
#include "ocifs/byte_source.h"
#include "sched/scheduler.h"
#include "sched/task_group.h"

namespace ocifs {

class GzipTailAhead {
 public:
  // Blobs smaller than this get no tail: their stream brings the end soon
  // anyway, and mounts that share one pass would each fetch the tail again.
  static constexpr uint64_t kMinBlobBytes = 4 * GzipTail::kFetchBytes;  // 16 MiB

  GzipTailAhead(const ByteSource& compressed, std::shared_ptr<Scheduler> scheduler, const PassProgress& progress);
  GzipTailAhead(const GzipTailAhead&) = delete;
  GzipTailAhead& operator=(const GzipTailAhead&) = delete;

  // Posts the decode of the end whose tar says its last entry's data ends at
  // `data_end` (decompressed offset); once, and not for a small blob or a
  // pass that is complete already.
  void Start(uint64_t data_end);

  // For a read of [offset, offset + buf.size()) that the pass may not have
  // reached: the bytes copied from the tail if it holds them exactly (waiting
  // for the pass or the tail's decode, whichever ends first); nullopt when the
  // read is the pass's to serve (no tail, not in it, or the pass got there).
  // Errors: the pass's failure.
  [[nodiscard]] Result<std::optional<size_t>> ServeAhead(uint64_t offset, std::span<uint8_t> buf);

  // The tail, while it is there (null before its decode, if it failed, or once dropped).
  std::shared_ptr<const GzipTail> Get() const;

 private:
  bool Copy(uint64_t offset, std::span<uint8_t> buf) const;

  const ByteSource& compressed_;
  const PassProgress& progress_;
  // tail_ is set once by task_'s task, before ready_ (release), and reset by the
  // first ServeAhead after the pass completed (dropped_).
  std::atomic<bool> asked_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> ended_{false};  // the decode ended (ready_ or not)
  std::atomic<bool> dropped_{false};
  mutable std::mutex tail_mu_;  // guards tail_
  std::shared_ptr<const GzipTail> tail_;
  // Last: destroyed first, cancelled and waited for (its task uses the members above).
  TaskGroup task_;
};

}  // namespace ocifs
