// LatencyHistogram: a lock-free histogram of durations with fixed buckets,
// for the counters a mount publishes (docs/mount-stats-format.md) and the
// CSI plugin's /metrics (docs/metrics.md).
//
// Thread safety: Observe and Snapshot are safe from any thread at once
// (relaxed atomics; a snapshot taken during observations may see a count
// without its sum, never a torn number). Units: seconds at the interface,
// microseconds inside.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

namespace ocifs {

// What a histogram holds at one moment; also what is read back from a
// stats file and summed across processes.
struct HistogramCounts {
  // counts[i]: observations <= kLatencyBounds[i] and > the bound before;
  // counts.back(): the ones above the last bound (+Inf). Not cumulative.
  std::vector<uint64_t> counts;
  uint64_t sum_us = 0;  // sum of the observations, microseconds

  uint64_t count() const;
  // Adds `other` bucket by bucket (both must have kLatencyBounds' layout, or be empty).
  void Add(const HistogramCounts& other);
};

// Upper bounds of the buckets, seconds (Prometheus' `le`): from 100 us to 30 s.
inline constexpr std::array<double, 15> kLatencyBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     5, 30};

class LatencyHistogram {
 public:
  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  void Observe(std::chrono::nanoseconds duration);
  HistogramCounts Snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kLatencyBounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_us_{0};
};

}  // namespace ocifs
