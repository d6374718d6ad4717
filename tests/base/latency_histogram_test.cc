#include "base/latency_histogram.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

using namespace ocifs;
using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST_CASE("a latency lands in the first bucket whose bound it does not exceed") {
  LatencyHistogram h;
  h.Observe(microseconds(50));    // <= 100 us: bucket 0
  h.Observe(microseconds(100));   // exactly 100 us: bucket 0 (le is inclusive)
  h.Observe(milliseconds(3));     // <= 5 ms
  h.Observe(std::chrono::seconds(60));  // above 30 s: +Inf
  HistogramCounts c = h.Snapshot();
  REQUIRE(c.counts.size() == kLatencyBounds.size() + 1);
  CHECK(c.counts[0] == 2);
  CHECK(c.counts[5] == 1);  // kLatencyBounds[5] == 0.005
  CHECK(c.counts.back() == 1);
  CHECK(c.count() == 4);
  CHECK(c.sum_us == 50 + 100 + 3000 + 60'000'000);
}

TEST_CASE("a negative duration counts as zero") {
  LatencyHistogram h;
  h.Observe(std::chrono::nanoseconds(-5));
  HistogramCounts c = h.Snapshot();
  CHECK(c.counts[0] == 1);
  CHECK(c.sum_us == 0);
}

TEST_CASE("histograms add bucket by bucket, and an empty one takes the other's layout") {
  LatencyHistogram a, b;
  a.Observe(milliseconds(1));
  b.Observe(milliseconds(1));
  b.Observe(milliseconds(200));
  HistogramCounts sum;
  sum.Add(a.Snapshot());
  sum.Add(b.Snapshot());
  CHECK(sum.counts.size() == kLatencyBounds.size() + 1);
  CHECK(sum.count() == 3);
  CHECK(sum.counts[3] == 2);  // 1 ms
  CHECK(sum.sum_us == 202'000);
}

TEST_CASE("observations from many threads are all counted") {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(microseconds(i % 2000));
    });
  }
  for (auto& t : threads) t.join();
  CHECK(h.Snapshot().count() == 40000);
}
