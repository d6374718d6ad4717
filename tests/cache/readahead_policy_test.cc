#include "cache/readahead_policy.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {
constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kSize = 1ull << 34;
}  // namespace

TEST_CASE("readahead policy asks for nothing on random reads") {
  ReadaheadPolicy policy;
  for (uint64_t at : {100 * MiB, 7 * MiB, 900 * MiB, 40 * MiB, 300 * MiB}) {
    CHECK_FALSE(policy.OnRead(at, 4096, kSize).has_value());
  }
  CHECK(policy.WindowAt(7 * MiB) == 0);
}

TEST_CASE("readahead policy grows the window on sequential reads: 1, 2, 4 .. 16 MiB") {
  ReadaheadPolicy policy({.initial = MiB, .max = 16 * MiB, .min_run = 2 * MiB});
  std::vector<ByteRange> asked;
  const uint64_t piece = 128 << 10;
  for (uint64_t at = 0; at < 200 * MiB; at += piece) {
    if (auto r = policy.OnRead(at, piece, kSize)) asked.push_back(*r);
  }
  REQUIRE(asked.size() >= 5);
  // Contiguous, never overlapping, each ahead of the read that asked.
  for (size_t i = 1; i < asked.size(); ++i) CHECK(asked[i].offset == asked[i - 1].offset + asked[i - 1].length);
  CHECK(asked[0].length <= MiB);
  uint64_t largest = 0;
  for (const auto& r : asked) largest = std::max(largest, r.length);
  CHECK(largest > 8 * MiB);  // a 16 MiB window, topped up half a window at a time
  CHECK(largest <= 16 * MiB);
  CHECK(asked.back().offset + asked.back().length <= 200 * MiB + 16 * MiB);
}

TEST_CASE("readahead policy never asks past the end of the source") {
  ReadaheadPolicy policy({.initial = MiB, .max = 16 * MiB, .min_run = 0});
  const uint64_t size = 3 * MiB + 5;
  for (uint64_t at = 0; at < size; at += 64 << 10) {
    if (auto r = policy.OnRead(at, 64 << 10, size)) CHECK(r->offset + r->length <= size);
  }
}

TEST_CASE("readahead policy follows two interleaved sequential streams") {
  ReadaheadPolicy policy({.initial = MiB, .max = 4 * MiB, .min_run = 2 * MiB});
  int a = 0, b = 0;
  for (uint64_t i = 0; i < 64; ++i) {
    if (policy.OnRead(i * 256 * 1024, 256 * 1024, kSize)) ++a;
    if (policy.OnRead(1000 * MiB + i * 256 * 1024, 256 * 1024, kSize)) ++b;
  }
  CHECK(a >= 3);
  CHECK(b >= 3);
  CHECK(policy.WindowAt(16 * MiB) == 4 * MiB);
}

TEST_CASE("readahead policy with max 0 never reads ahead") {
  ReadaheadPolicy policy({.initial = MiB, .max = 0});
  for (uint64_t at = 0; at < 32 * MiB; at += MiB) CHECK_FALSE(policy.OnRead(at, MiB, kSize).has_value());
}

TEST_CASE("readahead policy ignores short clustered reads below min_run") {
  ReadaheadPolicy policy({.initial = MiB, .max = 16 * MiB, .min_run = 2 * MiB});
  // Ten 32 KiB reads in a row (one guest read over compressed clusters), then elsewhere.
  for (uint64_t base : {uint64_t{0}, 500 * MiB, 90 * MiB}) {
    for (uint64_t i = 0; i < 10; ++i) CHECK_FALSE(policy.OnRead(base + i * 32768, 32768, kSize).has_value());
  }
}

TEST_CASE("readahead policy does not take one large read for a stream") {
  ReadaheadPolicy policy({.initial = MiB, .max = 16 * MiB, .min_run = 2 * MiB, .min_reads = 2});
  CHECK_FALSE(policy.OnRead(100 * MiB, 4 * MiB, kSize).has_value());
  CHECK_FALSE(policy.OnRead(300 * MiB, 4 * MiB, kSize).has_value());
  CHECK(policy.OnRead(104 * MiB, 4 * MiB, kSize).has_value());  // the second read of a stream
}
