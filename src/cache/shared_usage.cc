#include "cache/shared_usage.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>

namespace ocifs {
namespace {

constexpr size_t kCounterBytes = sizeof(uint64_t);

std::atomic_ref<uint64_t> Ref(uint64_t* p) { return std::atomic_ref<uint64_t>(*p); }

}  // namespace

Result<std::unique_ptr<SharedUsage>> SharedUsage::Open(const std::string& dir) {
  const std::string lock_path = dir + "/lock";
  const std::string usage_path = dir + "/usage";
  UniqueFd lock_fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd.valid()) return ErrnoError("open " + lock_path, errno);
  UniqueFd usage_fd(::open(usage_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!usage_fd.valid()) return ErrnoError("open " + usage_path, errno);
  struct stat st;
  if (::fstat(usage_fd.get(), &st) != 0) return ErrnoError("stat " + usage_path, errno);
  // Only ever grows, so racing openers cannot cut a live counter.
  if (st.st_size < static_cast<off_t>(kCounterBytes) &&
      ::ftruncate(usage_fd.get(), kCounterBytes) != 0) {
    return ErrnoError("extend " + usage_path, errno);
  }
  void* p = ::mmap(nullptr, kCounterBytes, PROT_READ | PROT_WRITE, MAP_SHARED, usage_fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + usage_path, errno);
  // The mapping outlives usage_fd.
  static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
  return std::unique_ptr<SharedUsage>(new SharedUsage(std::move(lock_fd), static_cast<uint64_t*>(p)));
}

SharedUsage::~SharedUsage() { ::munmap(counter_, kCounterBytes); }

uint64_t SharedUsage::Get() const { return Ref(counter_).load(); }
void SharedUsage::Add(uint64_t bytes) { Ref(counter_).fetch_add(bytes); }
void SharedUsage::Set(uint64_t bytes) { Ref(counter_).store(bytes); }

void SharedUsage::Sub(uint64_t bytes) {
  auto ref = Ref(counter_);
  uint64_t cur = ref.load();
  while (!ref.compare_exchange_weak(cur, cur > bytes ? cur - bytes : 0)) {
  }
}

SharedUsage::Lock::~Lock() {
  if (fd_ >= 0) ::flock(fd_, LOCK_UN);
  // inproc_ unlocks after the flock is released.
}

Result<SharedUsage::Lock> SharedUsage::LockExclusive(bool wait_for_threads) {
  Lock lock;
  if (wait_for_threads) {
    lock.inproc_ = std::unique_lock(lock_mu_);
  } else {
    lock.inproc_ = std::unique_lock(lock_mu_, std::try_to_lock);
    if (!lock.inproc_.owns_lock()) return Lock();
  }
  while (::flock(lock_fd_.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoError("flock cache lock file", errno);
  }
  lock.fd_ = lock_fd_.get();
  return lock;
}

}  // namespace ocifs
