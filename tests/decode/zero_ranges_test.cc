#include "decode/zero_ranges.h"

#include <catch2/catch.hpp>
#include <vector>

using namespace ocifs;

TEST_CASE("zero ranges merge what touches or overlaps and answer containment") {
  ZeroRanges z;
  z.Add(100, 200);
  z.Add(300, 400);
  CHECK(z.range_count() == 2);
  CHECK(z.Contains(100, 200));
  CHECK(z.Contains(150, 160));
  CHECK_FALSE(z.Contains(150, 250));
  CHECK_FALSE(z.Contains(50, 120));
  CHECK_FALSE(z.Contains(150, 150));  // empty
  z.Add(200, 300);                    // touches both: one range
  CHECK(z.range_count() == 1);
  CHECK(z.Contains(100, 400));
  z.Add(50, 120);
  z.Add(390, 500);
  CHECK(z.range_count() == 1);
  CHECK(z.Contains(50, 500));
  z.Add(10, 20);
  z.Add(5, 600);  // swallows everything
  CHECK(z.range_count() == 1);
  CHECK(z.Contains(5, 600));
}

TEST_CASE("zero ranges scanned from a buffer keep long runs and runs at its edges") {
  // At stream offset 1 MiB + 100: 10 KiB zeros (at the start: kept), 8 KiB data,
  // 16 KiB zeros (short, inside: not kept), 8 KiB data, 80 KiB zeros, 8 KiB data, 6 KiB zeros (at the end: kept).
  const uint64_t at = (1 << 20) + 100;
  std::vector<uint8_t> b;
  auto zeros = [&](size_t n) { b.resize(b.size() + n, 0); };
  auto data = [&](size_t n) { b.resize(b.size() + n, 7); };
  // Block-aligned lengths relative to the stream: the first block is partial (4096 - 100).
  zeros(4096 - 100 + 8192);
  data(8192);
  zeros(16384);
  data(8192);
  zeros(81920);
  data(8192);
  zeros(6000);
  ZeroRanges z;
  z.AddFrom(at, b);
  const uint64_t a0 = at, a1 = (1 << 20) + 12288;        // leading run
  const uint64_t l0 = a1 + 8192 + 16384 + 8192, l1 = l0 + 81920;  // the long run
  const uint64_t t0 = l1 + 8192, t1 = at + b.size();     // trailing run
  CHECK(z.Contains(a0, a1));
  CHECK(z.Contains(l0, l1));
  CHECK(z.Contains(t0, t1));
  CHECK_FALSE(z.Contains(a1 + 8192, a1 + 8192 + 16384));  // the short inner run
  CHECK(z.range_count() == 3);
}

TEST_CASE("a zero run tracker keeps runs that span many feeds, and the last one at the end") {
  ZeroRanges z;
  ZeroRunTracker t(z);
  std::vector<uint8_t> data(10000, 1), zeros(30000, 0);
  uint64_t at = 0;
  auto feed = [&](const std::vector<uint8_t>& v) {
    t.Feed(at, v);
    at += v.size();
  };
  feed(data);
  const uint64_t run = (at + 4095) / 4096 * 4096;  // the first whole zero block
  for (int i = 0; i < 4; ++i) feed(zeros);  // 120000 bytes of zeros over four feeds
  const uint64_t run_end = at / 4096 * 4096;   // its last whole block ends here
  feed(data);
  feed(std::vector<uint8_t>(20000, 0));  // too short
  feed(data);
  feed(std::vector<uint8_t>(70000, 0));  // runs to the end of the stream
  t.Finish(at);
  CHECK(z.Contains(run, run_end));
  CHECK_FALSE(z.Contains(run_end, run_end + 4096));
  CHECK(z.Contains(at - 65536, at));
  CHECK(z.range_count() == 2);
}

TEST_CASE("zero ranges answer extents: a known run is a hole to its end, the rest data up to the next run") {
  ZeroRanges z;
  z.Add(100, 200);
  z.Add(300, 400);
  auto at = [&](uint64_t pos, uint64_t limit) {
    Extent e = z.ExtentAt(pos, limit);
    CHECK(e.offset == pos);
    return std::pair{e.length, e.hole};
  };
  CHECK(at(0, 1000) == std::pair{uint64_t{100}, false});
  CHECK(at(100, 1000) == std::pair{uint64_t{100}, true});
  CHECK(at(150, 1000) == std::pair{uint64_t{50}, true});
  CHECK(at(199, 1000) == std::pair{uint64_t{1}, true});
  CHECK(at(200, 1000) == std::pair{uint64_t{100}, false});  // data up to the next run
  CHECK(at(400, 1000) == std::pair{uint64_t{600}, false});  // after the last run: data to the limit
  CHECK(at(150, 180) == std::pair{uint64_t{30}, true});     // clamped to the limit
  CHECK(at(1000, 1000) == std::pair{uint64_t{0}, false});
  CHECK(z.Ranges() == std::vector<std::pair<uint64_t, uint64_t>>{{100, 200}, {300, 400}});
}
