#include "decode/shared_pass_progress.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstring>

#include "base/shared_futex.h"
#include "base/unique_fd.h"

namespace ocifs {
namespace {

// Layout (docs/cache-format.md): a 64-byte header, then the zero bitmap.
constexpr char kMagic[8] = {'O', 'C', 'I', 'F', 'S', 'G', 'Z', 'P'};
constexpr uint32_t kVersion = 1;
constexpr size_t kVersionAt = 8;
constexpr size_t kPublishedAt = 16;  // (chunk size in KiB) << 40 | count
constexpr size_t kCapacityAt = 24;
constexpr size_t kWakeAt = 32;       // 32-bit sequence, bumped on every change of kPublishedAt
constexpr size_t kBitmapAt = 64;
constexpr size_t kWords = SharedPassProgress::kCapacity / 64;
constexpr size_t kFileBytes = kBitmapAt + kWords * sizeof(uint64_t);
constexpr unsigned kCountBits = 40;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
constexpr uint64_t kMaxChunkKib = (uint64_t{1} << (64 - kCountBits)) - 1;

std::atomic_ref<uint64_t> Ref(uint64_t* p) { return std::atomic_ref<uint64_t>(*p); }

}  // namespace

Result<std::unique_ptr<SharedPassProgress>> SharedPassProgress::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return ErrnoError("open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path, errno);
  // Only ever grows (sparse: the bitmap costs no blocks until bits are set),
  // so racing openers cannot cut a live file.
  if (st.st_size < static_cast<off_t>(kFileBytes) && ::ftruncate(fd.get(), kFileBytes) != 0) {
    return ErrnoError("extend " + path, errno);
  }
  void* p = ::mmap(nullptr, kFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoError("mmap " + path, errno);
  std::unique_ptr<SharedPassProgress> shared(new SharedPassProgress(static_cast<uint8_t*>(p)));
  // A new file is all zeros: every opener writes the same header (the words
  // that change are never touched here).
  uint8_t* map = shared->map_;
  static const uint8_t kZeros[8] = {};
  if (std::memcmp(map, kZeros, sizeof kZeros) == 0) {
    std::memcpy(map, kMagic, sizeof kMagic);
    std::memcpy(map + kVersionAt, &kVersion, sizeof kVersion);
    Ref(shared->Word(kCapacityAt)).store(kCapacity);
  }
  uint32_t version = 0;
  std::memcpy(&version, map + kVersionAt, sizeof version);
  if (std::memcmp(map, kMagic, sizeof kMagic) != 0 || version != kVersion) {
    return Corrupt("pass progress file " + path + " is not a version 1 oci-fs progress file");
  }
  static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
  static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);
  return shared;  // the mapping outlives fd
}

SharedPassProgress::~SharedPassProgress() { ::munmap(map_, kFileBytes); }

uint64_t* SharedPassProgress::Word(size_t offset) const {
  return reinterpret_cast<uint64_t*>(map_ + offset);  // 8-byte aligned: the map is page aligned
}

void SharedPassProgress::Restart(uint64_t chunk_size) {
  // Nothing is readable before the bits are cleared; a reader that loaded the
  // old count sees the chunk size change when it loads again.
  Ref(Word(kPublishedAt)).store(0);
  for (size_t w = 0; w < kWords; ++w) {
    uint64_t* word = Word(kBitmapAt + w * sizeof(uint64_t));
    if (Ref(word).load(std::memory_order_relaxed) != 0) Ref(word).store(0);
  }
  const uint64_t kib = chunk_size / 1024;
  chunk_kib_ = chunk_size % 1024 == 0 && kib > 0 && kib <= kMaxChunkKib ? kib : 0;
  WakeReaders();
}

void SharedPassProgress::Publish(uint64_t index, bool zero) {
  if (chunk_kib_ == 0 || index >= kCapacity) return;
  if (zero) Ref(Word(kBitmapAt + index / 64 * sizeof(uint64_t))).fetch_or(uint64_t{1} << (index % 64));
  Ref(Word(kPublishedAt)).store(chunk_kib_ << kCountBits | (index + 1), std::memory_order_release);
  WakeReaders();
}

void SharedPassProgress::Withdraw() {
  Ref(Word(kPublishedAt)).store(0);
  chunk_kib_ = 0;
  WakeReaders();
}

uint32_t* SharedPassProgress::WakeWord() const { return reinterpret_cast<uint32_t*>(map_ + kWakeAt); }

uint32_t SharedPassProgress::WakeSequence() const {
  return std::atomic_ref<uint32_t>(*WakeWord()).load(std::memory_order_acquire);
}

void SharedPassProgress::WakeReaders() {
  // One syscall per published chunk (a few hundred a second at most).
  std::atomic_ref<uint32_t>(*WakeWord()).fetch_add(1, std::memory_order_acq_rel);
  SharedFutexWakeAll(WakeWord());
}

void SharedPassProgress::WaitForChange(uint32_t seen_sequence, std::chrono::microseconds timeout) const {
  // Returns at once if the word moved since seen_sequence was read.
  SharedFutexWait(WakeWord(), seen_sequence, timeout);
}

SharedPassProgress::Published SharedPassProgress::Load() const {
  const uint64_t word = Ref(Word(kPublishedAt)).load(std::memory_order_acquire);
  Published p;
  p.chunk_size = (word >> kCountBits) * 1024;
  p.count = p.chunk_size == 0 ? 0 : std::min(word & kCountMask, kCapacity);
  return p;
}

bool SharedPassProgress::IsZero(uint64_t index) const {
  if (index >= kCapacity) return false;
  const uint64_t word = Ref(Word(kBitmapAt + index / 64 * sizeof(uint64_t))).load(std::memory_order_acquire);
  return (word >> (index % 64)) & 1;
}

}  // namespace ocifs
