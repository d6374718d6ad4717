#include "decode/zero_ranges.h"

#include <algorithm>
#include <iterator>

#include "base/all_zero.h"

namespace ocifs {
namespace {

constexpr uint64_t kBlock = 4096;

// Calls f(block_start, block_end, zero) for the blocks of `bytes` at `offset`
// (4 KiB aligned to the stream; the first and last may be partial).
template <typename F>
void ForEachBlock(uint64_t offset, std::span<const uint8_t> bytes, F&& f) {
  for (uint64_t at = offset; at < offset + bytes.size();) {
    const uint64_t end = std::min((at / kBlock + 1) * kBlock, offset + bytes.size());
    f(at, end, AllZero(bytes.subspan(static_cast<size_t>(at - offset), static_cast<size_t>(end - at))));
    at = end;
  }
}

}  // namespace

void ZeroRanges::Add(uint64_t from, uint64_t to) {
  if (from >= to) return;
  std::lock_guard lock(mu_);
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin() && std::prev(it)->second >= from) {
    --it;
    from = it->first;
  }
  while (it != ranges_.end() && it->first <= to) {
    to = std::max(to, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(from, to);
}

bool ZeroRanges::Contains(uint64_t from, uint64_t to) const {
  if (from >= to) return false;
  std::lock_guard lock(mu_);
  auto it = ranges_.upper_bound(from);
  return it != ranges_.begin() && std::prev(it)->second >= to;
}

void ZeroRanges::ZeroFill(uint64_t offset, std::span<uint8_t> bytes) const {
  const uint64_t end = offset + bytes.size();
  std::lock_guard lock(mu_);
  auto it = ranges_.upper_bound(offset);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first < end; ++it) {
    const uint64_t from = std::max(it->first, offset), to = std::min(it->second, end);
    if (from < to) std::fill_n(bytes.begin() + static_cast<ptrdiff_t>(from - offset), to - from, uint8_t{0});
  }
}

Extent ZeroRanges::ExtentAt(uint64_t pos, uint64_t limit) const {
  std::lock_guard lock(mu_);
  auto next = ranges_.upper_bound(pos);
  if (next != ranges_.begin() && std::prev(next)->second > pos) {
    return Extent{pos, std::min(std::prev(next)->second, std::max(limit, pos)) - pos, true};
  }
  const uint64_t end = next == ranges_.end() ? limit : std::min(next->first, limit);
  return Extent{pos, end > pos ? end - pos : 0, false};
}

std::vector<std::pair<uint64_t, uint64_t>> ZeroRanges::Ranges() const {
  std::lock_guard lock(mu_);
  return {ranges_.begin(), ranges_.end()};
}

size_t ZeroRanges::range_count() const {
  std::lock_guard lock(mu_);
  return ranges_.size();
}

void ZeroRanges::AddFrom(uint64_t offset, std::span<const uint8_t> bytes) {
  const uint64_t end = offset + bytes.size();
  bool in_run = false;
  uint64_t run_start = 0;
  auto close = [&](uint64_t at) {
    if (in_run && (at - run_start >= kMinRun || run_start == offset || at == end)) Add(run_start, at);
    in_run = false;
  };
  ForEachBlock(offset, bytes, [&](uint64_t block, uint64_t block_end, bool zero) {
    if (zero && !in_run) {
      in_run = true;
      run_start = block;
    } else if (!zero) {
      close(block);
    }
    if (block_end == end) close(end);
  });
}

void ZeroRunTracker::Feed(uint64_t offset, std::span<const uint8_t> bytes) {
  ForEachBlock(offset, bytes, [&](uint64_t block, uint64_t, bool zero) {
    if (zero && !in_run_) {
      in_run_ = true;
      run_start_ = block;
    } else if (!zero && in_run_) {
      if (block - run_start_ >= ZeroRanges::kMinRun) ranges_.Add(run_start_, block);
      in_run_ = false;
    }
  });
}

void ZeroRunTracker::Finish(uint64_t offset) {
  if (in_run_ && offset - run_start_ >= ZeroRanges::kMinRun) ranges_.Add(run_start_, offset);
  in_run_ = false;
}

}  // namespace ocifs
