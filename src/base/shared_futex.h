// Futex calls on a 32-bit word shared between processes: the word lives in a
// MAP_SHARED file mapping, so the kernel keys it by the file and offset (no
// FUTEX_PRIVATE_FLAG). Used by the gzip pass's progress file and by the
// kept-piece claims. Thread-safe: plain syscalls.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

namespace ocifs {

// Blocks while *word == expected, up to `timeout` (returns at once if the word
// differs). EINTR, EAGAIN and ETIMEDOUT are all plain returns: the caller
// looks at the word again.
inline void SharedFutexWait(uint32_t* word, uint32_t expected, std::chrono::microseconds timeout) {
  if (timeout.count() <= 0) return;
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1000000 * 1000);
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

// Wakes every thread of every process blocked on `word`.
inline void SharedFutexWakeAll(uint32_t* word) {
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace ocifs
