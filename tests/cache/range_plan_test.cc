#include "cache/range_plan.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>

using namespace ocifs;

namespace {

std::vector<PieceRun> Plan(std::vector<uint64_t> pieces, uint64_t count, RangePlanOptions o = {}) {
  return PlanPieceRuns(pieces, count, o);
}

}  // namespace

TEST_CASE("range plan coalesces adjacent pieces into one run") {
  CHECK(Plan({4, 5, 6, 7}, 100) == std::vector<PieceRun>{{4, 4}});
}

TEST_CASE("range plan fills a short gap and leaves a long one") {
  RangePlanOptions o{.gap = 2, .max_run = 64, .window = 64};
  // 10 and 13: two pieces apart, one run of 4 (the gap's bytes fetched with them).
  CHECK(Plan({10, 13}, 100, o) == std::vector<PieceRun>{{10, 4}});
  // 10 and 14: three apart, two runs.
  CHECK(Plan({10, 14}, 100, o) == std::vector<PieceRun>{{10, 1}, {14, 1}});
  o.gap = 0;
  CHECK(Plan({10, 12}, 100, o) == std::vector<PieceRun>{{10, 1}, {12, 1}});
}

TEST_CASE("range plan caps a run at max_run pieces") {
  RangePlanOptions o{.gap = 0, .max_run = 3, .window = 64};
  CHECK(Plan({0, 1, 2, 3, 4, 5, 6}, 100, o) == std::vector<PieceRun>{{0, 3}, {3, 3}, {6, 1}});
}

TEST_CASE("range plan keeps the profile's order window by window") {
  RangePlanOptions o{.gap = 0, .max_run = 8, .window = 2};
  // Windows {50, 10} then {51, 11}: sorted inside a window, in the order of the windows.
  CHECK(Plan({50, 10, 51, 11}, 100, o) == std::vector<PieceRun>{{10, 1}, {50, 1}, {11, 1}, {51, 1}});
  o.window = 4;  // one window: sorted and coalesced
  CHECK(Plan({50, 10, 51, 11}, 100, o) == std::vector<PieceRun>{{10, 2}, {50, 2}});
}

TEST_CASE("range plan drops repeats and pieces past the blob's end") {
  CHECK(Plan({3, 3, 99, 100, 1000}, 100, {.gap = 0}) == std::vector<PieceRun>{{3, 1}, {99, 1}});
  CHECK(Plan({}, 100).empty());
  CHECK(Plan({0, 1}, 0).empty());
}

TEST_CASE("range plan never reaches into an earlier window's run") {
  RangePlanOptions o{.gap = 2, .max_run = 8, .window = 1};
  // 10 then 12 then 8: 12's gap filler would be 11, free; 8's would reach 9 only.
  const auto runs = Plan({10, 12, 8, 11, 9}, 100, o);
  std::set<uint64_t> seen;
  for (const PieceRun& r : runs) {
    for (uint64_t p = r.first; p < r.first + r.count; ++p) CHECK(seen.insert(p).second);
  }
  CHECK(seen == std::set<uint64_t>{8, 9, 10, 11, 12});
}

TEST_CASE("range plan covers every listed piece exactly once, whatever the input") {
  std::mt19937_64 rng(5);
  for (int round = 0; round < 200; ++round) {
    const uint64_t count = 1 + rng() % 300;
    std::vector<uint64_t> pieces(rng() % 200);
    for (auto& p : pieces) p = rng() % (count + 20);
    RangePlanOptions o{.gap = rng() % 4, .max_run = 1 + rng() % 10, .window = 1 + rng() % 80};
    const auto runs = PlanPieceRuns(pieces, count, o);
    std::set<uint64_t> covered;
    for (const PieceRun& r : runs) {
      REQUIRE(r.count >= 1);
      REQUIRE(r.count <= o.max_run);
      REQUIRE(r.first + r.count <= count);
      for (uint64_t p = r.first; p < r.first + r.count; ++p) REQUIRE(covered.insert(p).second);  // no overlap
    }
    for (uint64_t p : pieces) {
      if (p < count) REQUIRE(covered.contains(p));
    }
    // What a run adds beyond the listed pieces is only gaps of at most o.gap.
    std::set<uint64_t> listed(pieces.begin(), pieces.end());
    for (const PieceRun& r : runs) {
      REQUIRE(listed.contains(r.first));
      REQUIRE(listed.contains(r.first + r.count - 1));
    }
  }
}

TEST_CASE("range plan gives the same runs over a span too wide for its bitmap") {
  // Pieces 2^30 apart (a blob of petabytes in 4 KiB pieces) take the hash set
  // path; shifted next to each other, the bitmap path: the same runs.
  std::mt19937_64 rng(9);
  for (int round = 0; round < 50; ++round) {
    std::vector<uint64_t> near, far;
    for (int i = 0; i < 100; ++i) {
      const uint64_t p = rng() % 64;
      const bool high = rng() % 2 == 1;
      near.push_back(p + (high ? 100 : 0));
      far.push_back(p + (high ? uint64_t{1} << 30 : 0));
    }
    RangePlanOptions o{.gap = rng() % 4, .max_run = 1 + rng() % 10, .window = 1 + rng() % 40};
    const auto near_runs = PlanPieceRuns(near, 200, o);
    const auto far_runs = PlanPieceRuns(far, (uint64_t{1} << 30) + 100, o);
    REQUIRE(near_runs.size() == far_runs.size());
    for (size_t i = 0; i < near_runs.size(); ++i) {
      const uint64_t shift = near_runs[i].first >= 100 ? (uint64_t{1} << 30) - 100 : 0;
      CHECK(far_runs[i] == PieceRun{near_runs[i].first + shift, near_runs[i].count});
    }
  }
}
