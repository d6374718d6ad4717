// PassProgress: how far the first pass of a stream decoder (a gzip layer's
// indexing pass, a single-frame zstd layer's decompression) has produced its
// output, and whether it has ended. Readers wait on it for the bytes they need;
// the pass advances it. GzipSource and ZstdStreamSource share it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <mutex>
#include <string>

#include "decode/background_pass.h"
#include "ocifs/status.h"

namespace ocifs {

// States: running (bytes [0, produced) are readable) -> complete (every byte
// is readable; produced is the stream's size) -> finished (the pass's work
// after its output, such as saving an index, is done too). Or running ->
// failed: every wait then returns the failure. A pass cancelled before it
// completes (its BackgroundPass's cancel hook, see Follow) fails with
// kCancelled; a complete stream stays complete.
//
// Units: bytes of the decompressed stream. Thread safety: safe for concurrent
// use. A reader's wait for bytes already produced, and every wait once the
// stream is complete, takes no lock (two atomic loads). mu_ is a leaf lock:
// nothing else is locked while it is held, and the pass's Need is called
// without it.
class PassProgress {
 public:
  // What a reader may read now.
  struct Produced {
    uint64_t bytes = 0;     // bytes [0, bytes) are readable
    bool complete = false;  // and they are the whole stream
  };

  // `what` names the pass in its cancellation error ("<what> cancelled").
  explicit PassProgress(std::string what) : what_(std::move(what)) {}
  PassProgress(const PassProgress&) = delete;
  PassProgress& operator=(const PassProgress&) = delete;

  // Makes the waits start `pass` (BackgroundPass::Need) when they must wait,
  // and its cancellation fail the progress with kCancelled. Call once, before
  // any wait; `pass` must be destroyed before this object (declare it after).
  void Follow(BackgroundPass& pass);

  // The pass's side, called in this order (Fail at most once instead of Complete).
  // Bytes [0, bytes) are produced; `bytes` never decreases.
  void Advance(uint64_t bytes);
  // Every byte is produced: the stream is `size` bytes.
  void Complete(uint64_t size);
  // The pass failed (or was cancelled): every read from now on returns `status`.
  // A later Fail replaces the status (the pass's own error after its cancellation).
  void Fail(Status status);
  // The pass has ended (after Complete or Fail).
  void Finish();

  // The readers' side. Waits until bytes [0, end) are produced, the stream is
  // complete (it may be shorter than end) or the pass failed; returns what is
  // readable, or the failure. Starts the pass if it must wait for it.
  [[nodiscard]] Result<Produced> WaitFor(uint64_t end) const;
  // WaitFor, that also ends (nullopt) once `give_up()` is true: it is asked
  // at the start and after each Wake (and each advance). It must not block.
  [[nodiscard]] Result<std::optional<Produced>> WaitForOr(uint64_t end, const std::function<bool()>& give_up) const;
  // Wakes WaitForOr's waiters to ask their give_up again (call after making it true).
  void Wake() const;
  // WaitUntilFinished for at most `budget`; false if the pass has not ended by then.
  bool WaitUntilFinishedFor(std::chrono::milliseconds budget) const;
  // Bytes produced so far (the size once complete).
  uint64_t produced() const { return produced_.load(std::memory_order_acquire); }
  // Waits until the pass finished after completing, or failed; returns its status.
  [[nodiscard]] Status WaitUntilFinished() const;
  // The failure, or ok.
  [[nodiscard]] Status failure() const;
  bool complete() const { return state_.load(std::memory_order_acquire) == kComplete; }
  // The stream's size once complete; ByteSource::kUnknownSize before.
  uint64_t size() const;

 private:
  enum State : uint8_t { kRunning, kComplete, kFailed };
  // Starts the followed pass, if any.
  void NeedPass() const;

  const std::string what_;
  BackgroundPass* pass_ = nullptr;  // set by Follow, before any wait
  // Written under mu_ (so waiters do not miss a change); read without it on the fast path.
  std::atomic<State> state_{kRunning};
  std::atomic<uint64_t> produced_{0};  // == the size once kComplete
  mutable std::mutex mu_;              // guards the fields below; a leaf lock
  mutable std::condition_variable cv_;
  Status failure_;         // set with kFailed
  bool finished_ = false;  // Finish was called
};

}  // namespace ocifs
