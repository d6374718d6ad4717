// IndexFallbackSource: a layer read through an index loaded from a file (a
// gzip checkpoint index, a zstd frame table with CRCs), which may prove wrong
// (an index from a registry, or built for another blob of the same size and
// tail), with the way back to what the node finds itself (a first pass).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>

#include "ocifs/byte_source.h"

namespace ocifs {

// Reads go to `primary` (a GzipSource over the loaded index, a ZstdFrameSource
// over a loaded frame table) until one of its
// reads proves the index wrong (ProvesIndexWrong: a block that does not match
// its checksum, an inflate from a checkpoint that fails or ends short). Then
// it logs one error, makes the fallback once (the factory: a GzipSource that
// ignores the file and runs a first pass, which saves a new index over it),
// and serves that read, retried, and every later one from the fallback. The
// primary returns bytes only from verified blocks, so nothing it returned
// before the switch was wrong. If the factory fails, every later read
// returns its error.
//
// size(), access(), KeepsDecoded, ExtentAt, Prefetch and WaitUntilIndexed
// (at once for the primary, which builds nothing) are the primary's until the switch,
// then the fallback's: its size is kUnknownSize until its pass completes
// (a streaming decoder's exception to a constant size, ByteSource::size),
// and it is read as a stream (kStream) until then.
//
// Thread safety: safe for concurrent use. Reads in flight on the primary at
// the switch complete there (their bytes are verified) or fail over too; the
// factory runs once, under mu_, a leaf lock held for nothing else.
// Ownership: shares `primary` and what the factory captures.
class IndexFallbackSource final : public ByteSource {
 public:
  using Factory = std::function<Result<ByteSourcePtr>()>;

  // index_name: what the loaded index is, for the log ("gzip index").
  IndexFallbackSource(ByteSourcePtr primary, Factory fallback, std::string index_name = "gzip index");

  uint64_t size() const override { return Current()->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override { return Current()->ExtentAt(offset); }
  void Prefetch(uint64_t offset, uint64_t length) const override { Current()->Prefetch(offset, length); }
  std::string Describe() const override { return primary_->Describe(); }
  Access access() const override { return Current()->access(); }
  bool KeepsDecoded() const override { return Current()->KeepsDecoded(); }
  Status WaitUntilIndexed() const override { return Current()->WaitUntilIndexed(); }

  // Whether reads went over to the fallback.
  bool fell_back() const { return switched_.load(std::memory_order_acquire); }
  // Whether `status`, from a read of the primary, proves its index wrong:
  // kDataLoss (a checksum) or kCorrupt (an inflate from one of its
  // checkpoints failed or ended early, a window would not inflate). Not:
  // kUnavailable, kIoError, kCancelled (the index may be right).
  static bool ProvesIndexWrong(const Status& status);

 private:
  // The source that serves now: the fallback once made, else the primary.
  ByteSourcePtr Current() const;
  // The fallback, made (and the switch logged, with `why`) by the first call.
  Result<ByteSourcePtr> Fallback(const Status& why) const;

  const ByteSourcePtr primary_;
  const Factory factory_;
  const std::string index_name_;
  mutable std::atomic<bool> switched_{false};  // set once, under mu_, once the fallback was made or failed
  mutable std::mutex mu_;              // guards the fields below and the factory's one call
  mutable ByteSourcePtr fallback_;
  mutable Status fallback_error_;      // the factory's error, if it failed
};

}  // namespace ocifs
