// CountingSource: a ByteSource stage for unit tests that wraps another and
// counts what reaches it: reads, bytes asked for and returned, and Prefetch
// hints (recorded, not forwarded). Setting `fail` makes reads fail as a
// registry that went away would (kUnavailable).
//
// Thread safety: safe for concurrent use (atomics; `mu` guards prefetches).
#pragma once

#include <atomic>
#include <mutex>
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
  std::string Describe() const override { return name_.empty() ? "counted " + inner_->Describe() : name_; }

  mutable std::atomic<int> reads{0};
  mutable std::atomic<uint64_t> bytes{0};     // asked for
  mutable std::atomic<uint64_t> returned{0};  // returned by inner
  std::atomic<bool> fail{false};
  mutable std::mutex mu;
  mutable std::vector<std::pair<uint64_t, uint64_t>> prefetches;  // (offset, length), guarded by mu

 private:
  ByteSourcePtr inner_;
  std::string name_;
};

}  // namespace ocifs::testing
