// FetchLeases: the cross-process single flight of chunk fetches. Before a
// process fetches a missing chunk from the registry it takes the chunk's
// fetch lease; another process missing the same chunk finds the lease held,
// waits for it (bounded) and then reads the chunk from disk instead of
// fetching it again. Within one process ChunkCache's flights already share a
// fetch; the leases extend that to every process sharing the cache dir.
//
// A lease is flock(LOCK_EX) on one of kStripes empty files dir/leases/<n>,
// n = StripeOf(key, index) (docs/cache-format.md "Fetch leases"). The kernel
// drops the flock when its holder exits or is killed, so a dead owner never
// blocks anyone; a live owner that stalls blocks waiters only for the bound
// they pass to Acquire. Two chunks may share a stripe: then one waits for
// the other's fetch, finds its own chunk missing and fetches it itself (a
// delay, never a wrong byte: the lease guards no data, only who fetches).
// Holding several leases is allowed only if they were all taken with
// TryAcquire (it never blocks); whoever blocks in Acquire holds no other
// lease, so leases cannot deadlock.
//
// Thread safety: const methods, safe from any thread and process. Each Lease
// owns its own open file description (flock conflicts between them even
// within one process). Units: milliseconds for the bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "ocifs/status.h"

namespace ocifs {

class FetchLeases {
 public:
  static constexpr uint32_t kStripes = 1024;

  // Creates dir/leases (mode 0700) if missing; dir must exist.
  [[nodiscard]] static Result<std::unique_ptr<FetchLeases>> Open(const std::string& dir);
  FetchLeases(const FetchLeases&) = delete;
  FetchLeases& operator=(const FetchLeases&) = delete;

  // One lease: held while alive (if held()). Movable; releases on destruction.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) noexcept = default;
    bool held() const { return fd_.valid(); }
    void Release() { fd_.reset(); }  // closing the fd drops the flock

   private:
    friend class FetchLeases;
    explicit Lease(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
  };

  // The chunk's lease if no one holds it, else an unheld Lease at once. Also
  // unheld if the lease file cannot be opened (logged once): the caller then
  // fetches without a lease, as before leases existed.
  Lease TryAcquire(std::string_view key, uint64_t index) const;
  // Waits until the chunk's lease is free and takes it; unheld if `bound`
  // passed first (the holder stalls) or the file cannot be opened. Sets
  // *waited if the lease was held by someone when called.
  Lease Acquire(std::string_view key, uint64_t index, std::chrono::milliseconds bound, bool* waited) const;

  // The stripe of chunk `index` of `key`: (FNV-1a(key) + index * 0x9e3779b97f4a7c15) mod kStripes.
  static uint32_t StripeOf(std::string_view key, uint64_t index);

 private:
  explicit FetchLeases(UniqueFd dir_fd) : dir_fd_(std::move(dir_fd)) {}
  // A new open file description of the stripe's file (created if missing); invalid on error.
  UniqueFd OpenStripe(uint32_t stripe) const;

  const UniqueFd dir_fd_;  // dir/leases, O_DIRECTORY
};

}  // namespace ocifs
