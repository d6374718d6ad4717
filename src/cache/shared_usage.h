// SharedUsage: what every process using a cache dir shares besides the files:
//  - dir/usage: the bytes of chunk files on disk, one native-endian uint64 at
//    offset 0, mmap'd MAP_SHARED and changed with atomic operations;
//  - dir/lock: flock(LOCK_EX) held to rescan the directory and evict, so
//    two processes never evict at once.
//
// The counter is an estimate: set from a full scan at open and after each
// eviction, moved by Add/Sub in between. An Add racing a scan may be lost and a
// crash between a rename and its Add leaves it low by one chunk; the next scan
// corrects both. Lost updates only shift when the next eviction runs.
//
// Thread safety: Get/Add/Sub/Set are atomic (also across processes).
// LockExclusive() orders threads of this process by lock_mu_ and processes by
// flock on lock_fd_ (flock alone would not: threads share one open file).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/unique_fd.h"
#include "ocifs/status.h"

namespace ocifs {

class SharedUsage {
 public:
  // Creates dir/usage and dir/lock (mode 0600) if missing; dir must exist.
  [[nodiscard]] static Result<std::unique_ptr<SharedUsage>> Open(const std::string& dir);
  ~SharedUsage();
  SharedUsage(const SharedUsage&) = delete;
  SharedUsage& operator=(const SharedUsage&) = delete;

  uint64_t Get() const;
  void Add(uint64_t bytes);
  void Sub(uint64_t bytes);  // saturates at 0
  void Set(uint64_t bytes);

  // Held while alive: this process's lock_mu_, then the flock. Movable.
  class Lock {
   public:
    Lock() = default;
    Lock(Lock&& other) noexcept : inproc_(std::move(other.inproc_)), fd_(std::exchange(other.fd_, -1)) {}
    Lock& operator=(Lock&&) = delete;
    ~Lock();
    bool held() const { return fd_ >= 0; }

   private:
    friend class SharedUsage;
    std::unique_lock<std::mutex> inproc_;
    int fd_ = -1;  // lock_fd_ while the flock is held (not owned)
  };
  // Blocks until held. With !wait_for_threads, returns an unheld Lock at once
  // when another thread of this process holds it (that thread is doing the work).
  [[nodiscard]] Result<Lock> LockExclusive(bool wait_for_threads);

 private:
  SharedUsage(UniqueFd lock_fd, uint64_t* counter) : lock_fd_(std::move(lock_fd)), counter_(counter) {}

  const UniqueFd lock_fd_;  // dir/lock
  std::mutex lock_mu_;      // guards the use of the flock on lock_fd_ by this process
  uint64_t* const counter_; // mmap of dir/usage; accessed only through std::atomic_ref
};

}  // namespace ocifs
