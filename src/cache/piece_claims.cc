#include "cache/piece_claims.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "base/shared_futex.h"
#include "cache/kept_piece_format.h"

namespace ocifs {
namespace {

// How long one futex wait lasts before the waiter looks at the holder again
// (whether it still exists) and at its own deadline.
constexpr std::chrono::milliseconds kWaitSlice{20};

std::atomic_ref<uint32_t> Ref(uint32_t* word) { return std::atomic_ref<uint32_t>(*word); }

bool ProcessGone(uint32_t pid) { return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

}  // namespace

Result<std::unique_ptr<PieceClaims>> PieceClaims::Map(int fd) {
  // The header block is always whole (the file is created with it).
  void* p = ::mmap(nullptr, kKeptHeaderBlock, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap the kept-piece claims", errno);
  return std::unique_ptr<PieceClaims>(new PieceClaims(static_cast<uint8_t*>(p)));
}

PieceClaims::~PieceClaims() { ::munmap(map_, kKeptHeaderBlock); }

uint32_t* PieceClaims::Word(uint64_t index) const {
  return reinterpret_cast<uint32_t*>(map_ + kKeptClaimsOffset) + index % kKeptClaimWords;
}

PieceClaims::Claim::~Claim() {
  if (!word_) return;
  uint32_t mine = static_cast<uint32_t>(::getpid());
  // Only ours to free (a waiter that took it over believed us gone: leave it).
  if (Ref(word_).compare_exchange_strong(mine, 0, std::memory_order_acq_rel)) SharedFutexWakeAll(word_);
}

PieceClaims::Acquired PieceClaims::Acquire(uint64_t index, const std::function<bool()>& ready,
                                           std::chrono::milliseconds timeout) const {
  uint32_t* word = Word(index);
  const uint32_t me = static_cast<uint32_t>(::getpid());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool waited = false;
  for (;;) {
    uint32_t holder = 0;
    if (Ref(word).compare_exchange_strong(holder, me, std::memory_order_acq_rel)) {
      return {Outcome::kClaimed, waited, Claim(word)};
    }
    // Held (by another process, or another thread of this one).
    if (ready()) return {Outcome::kReady, waited, Claim()};
    if (holder != me && ProcessGone(holder)) {
      // Its claimer died (a crash, a kill): take the word over.
      if (Ref(word).compare_exchange_strong(holder, me, std::memory_order_acq_rel)) {
        return {Outcome::kClaimed, waited, Claim(word)};
      }
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return {Outcome::kTimedOut, waited, Claim()};
    waited = true;
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
    SharedFutexWait(word, holder, std::min<std::chrono::microseconds>(left, kWaitSlice));
  }
}

}  // namespace ocifs
