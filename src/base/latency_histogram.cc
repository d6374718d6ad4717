#include "base/latency_histogram.h"

#include <algorithm>

namespace ocifs {

uint64_t HistogramCounts::count() const {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

void HistogramCounts::Add(const HistogramCounts& other) {
  if (counts.size() < other.counts.size()) counts.resize(other.counts.size(), 0);
  for (size_t i = 0; i < other.counts.size(); ++i) counts[i] += other.counts[i];
  sum_us += other.sum_us;
}

void LatencyHistogram::Observe(std::chrono::nanoseconds duration) {
  const int64_t ns = std::max<int64_t>(duration.count(), 0);
  const double seconds = static_cast<double>(ns) / 1e9;
  auto it = std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds);  // first bound >= seconds
  counts_[static_cast<size_t>(it - kLatencyBounds.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(ns / 1000), std::memory_order_relaxed);
}

HistogramCounts LatencyHistogram::Snapshot() const {
  HistogramCounts out;
  out.counts.reserve(counts_.size());
  for (const auto& c : counts_) out.counts.push_back(c.load(std::memory_order_relaxed));
  out.sum_us = sum_us_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace ocifs
