#include "cache/fetch_lease.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "cache/cache_key.h"

namespace ocifs {

Result<std::unique_ptr<FetchLeases>> FetchLeases::Open(const std::string& dir) {
  const std::string path = dir + "/leases";
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("chunk cache: cannot create " + path + ": " + std::strerror(errno));
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return IoError("chunk cache: cannot open " + path + ": " + std::strerror(errno));
  return std::unique_ptr<FetchLeases>(new FetchLeases(std::move(fd)));
}

uint32_t FetchLeases::StripeOf(std::string_view key, uint64_t index) {
  return static_cast<uint32_t>((CacheKeyHash(key) + index * 0x9e3779b97f4a7c15ull) % kStripes);
}

UniqueFd FetchLeases::OpenStripe(uint32_t stripe) const {
  const std::string name = std::to_string(stripe);
  UniqueFd fd(::openat(dir_fd_.get(), name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) {
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) {
      spdlog::warn("chunk cache: cannot open fetch lease leases/{}: {} (fetching without leases)", name,
                   std::strerror(errno));
    }
  }
  return fd;
}

FetchLeases::Lease FetchLeases::TryAcquire(std::string_view key, uint64_t index) const {
  UniqueFd fd = OpenStripe(StripeOf(key, index));
  if (!fd.valid()) return Lease();
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EINTR) return Lease();  // EWOULDBLOCK: held by someone else
  }
  return Lease(std::move(fd));
}

FetchLeases::Lease FetchLeases::Acquire(std::string_view key, uint64_t index, std::chrono::milliseconds bound,
                                        bool* waited) const {
  if (waited) *waited = false;
  UniqueFd fd = OpenStripe(StripeOf(key, index));
  if (!fd.valid()) return Lease();
  const auto deadline = std::chrono::steady_clock::now() + bound;
  auto pause = std::chrono::milliseconds(1);
  // Polled, not a blocking flock: a blocking one could not honour the bound.
  // A fetch takes milliseconds to seconds, so a poll every <= 20 ms costs nothing.
  for (;;) {
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return Lease(std::move(fd));
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return Lease();
    if (waited) *waited = true;
    if (std::chrono::steady_clock::now() >= deadline) return Lease();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

}  // namespace ocifs
