#include "cache/readahead_policy.h"

#include <algorithm>

namespace ocifs {

ReadaheadPolicy::Stream* ReadaheadPolicy::Find(uint64_t offset) {
  Stream* best = nullptr;
  for (Stream& s : streams_) {
    if (s.used == 0) continue;
    // Continuing: within the window (or 1 MiB / initial) behind or ahead of the end.
    const uint64_t reach = std::max(s.window, options_.initial);
    const bool near = offset <= s.end ? s.end - offset <= reach : offset - s.end <= reach;
    if (near && (!best || s.used > best->used)) best = &s;
  }
  return best;
}

std::optional<ByteRange> ReadaheadPolicy::OnRead(uint64_t offset, uint64_t length, uint64_t size) {
  if (options_.max == 0 || length == 0 || offset >= size) return std::nullopt;
  const uint64_t end = std::min(size, offset + length);
  std::lock_guard lock(mu_);
  ++clock_;
  Stream* s = Find(offset);
  if (!s) {
    s = &*std::min_element(streams_.begin(), streams_.end(),
                           [](const Stream& a, const Stream& b) { return a.used < b.used; });
    *s = Stream{offset, end, end, 0, 1, clock_};
    return std::nullopt;
  }
  s->used = clock_;
  // A read inside what was already read (an out-of-order request) says nothing new.
  if (end <= s->end) return std::nullopt;
  s->end = end;
  s->start = std::min(s->start, offset);
  ++s->reads;
  if (s->end - s->start < options_.min_run || s->reads < options_.min_reads) return std::nullopt;
  if (s->window == 0) s->window = std::min(options_.initial, options_.max);
  s->prefetched = std::max(s->prefetched, end);
  // Issue the next window once less than half of one is in flight ahead of the reader.
  if (s->prefetched - end >= s->window / 2 || s->prefetched >= size) return std::nullopt;
  const uint64_t to = std::min(size, end + s->window);
  if (to <= s->prefetched) return std::nullopt;
  ByteRange r{s->prefetched, to - s->prefetched};
  s->prefetched = to;
  s->window = std::min(s->window * 2, options_.max);  // the next one is twice as large
  return r;
}

uint64_t ReadaheadPolicy::WindowAt(uint64_t offset) const {
  std::lock_guard lock(mu_);
  for (const Stream& s : streams_) {
    if (s.used == 0) continue;
    const uint64_t reach = std::max(s.window, options_.initial);
    const bool near = offset <= s.end ? s.end - offset <= reach : offset - s.end <= reach;
    if (near) return s.window;
  }
  return 0;
}

}  // namespace ocifs
