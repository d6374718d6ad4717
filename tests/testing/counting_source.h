// CountingSource: a ByteSource stage for unit tests that wraps another and
// counts what reaches it: reads, bytes asked for and returned, and Prefetch
// hints (recorded, not forwarded). Setting `fail` makes reads fail as a
// registry that went away would (kUnavailable).
//
// Thread safety: safe for concurrent use (atomics; `mu` guards prefetches).
#pragma once

#include <atomic>
#include <mutex>
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs::testing {

class CountingSource final : public ByteSource {
 public:
  // name: what Describe() says; "" = "counted " + inner's description.
  explicit CountingSource(ByteSourcePtr inner, std::string name = "")
      : inner_(std::move(inner)), name_(std::move(name)) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    ++reads;
    bytes += buf.size();
    if (fail) return Unavailable("registry down");
    auto n = inner_->ReadAt(offset, buf);
    if (n.ok()) returned += *n;
    return n;
  }
  void Prefetch(uint64_t offset, uint64_t length) const override {
    std::lock_guard<std::mutex> lock(mu);
    prefetches.emplace_back(offset, length);
  }
  // With `multi_range` set, one request brings several ranges (as a registry
  // that does multi-range requests): counted in range_requests, each range
  // read from inner and handed over in pieces of `piece` bytes. Before that,
  // `repeat_first` bytes of the first range are handed over and then again
  // from its start (a retried attempt); with `ranges_answered` > 0, only that
  // many ranges come and then kUnsupported (a server that answered one range).
  Status ReadRanges(std::span<const ByteRange> ranges, const RangesConsumer& consume) const override {
    if (!multi_range) return ByteSource::ReadRanges(ranges, consume);
    ++range_requests;
    if (fail) return Unavailable("registry down");
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (ranges_answered > 0 && i == ranges_answered) return Unsupported("answered " + std::to_string(i) + " ranges");
      std::vector<uint8_t> bytes(ranges[i].length);
      OCIFS_RETURN_IF_ERROR(ReadExactly(*inner_, ranges[i].offset, bytes));
      this->bytes += bytes.size();
      returned += bytes.size();
      auto hand = [&](size_t from, size_t to) {
        for (size_t at = from; at < to; at += piece) {
          const size_t n = std::min(piece, to - at);
          if (!consume(ranges[i].offset + at, std::span<const uint8_t>(bytes).subspan(at, n))) return false;
        }
        return true;
      };
      if (i == 0 && repeat_first > 0 && !hand(0, std::min(repeat_first, bytes.size()))) return Cancelled("stopped");
      if (!hand(0, bytes.size())) return Cancelled("stopped");
    }
    return Status::Ok();
  }
  std::string Describe() const override { return name_.empty() ? "counted " + inner_->Describe() : name_; }

  mutable std::atomic<int> reads{0};
  mutable std::atomic<uint64_t> bytes{0};     // asked for
  mutable std::atomic<uint64_t> returned{0};  // returned by inner
  std::atomic<bool> fail{false};
  bool multi_range = false;       // set before use
  size_t piece = 10000;           // bytes per consumer call of ReadRanges
  size_t repeat_first = 0;        // bytes of the first range handed over twice
  size_t ranges_answered = 0;     // 0: all
  mutable std::atomic<int> range_requests{0};
  mutable std::mutex mu;
  mutable std::vector<std::pair<uint64_t, uint64_t>> prefetches;  // (offset, length), guarded by mu

 private:
  ByteSourcePtr inner_;
  std::string name_;
};

}  // namespace ocifs::testing
