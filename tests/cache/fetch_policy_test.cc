#include "cache/fetch_policy.h"

#include <catch2/catch.hpp>

using namespace ocifs;

TEST_CASE("a policy tuned for 1 MiB chunks keeps its bytes per request at smaller chunks") {
  FetchPolicy tuned;  // runs of 2 chunks, 8 profile runs of 1 chunk in flight
  const FetchPolicy same = FetchPolicy::ForCache(tuned, 1u << 20, 10ull << 30);
  CHECK(same.max_run_chunks == 2);
  CHECK(same.prefetch_all_run_chunks == 2);
  CHECK(same.profile_threads == 8);
  CHECK(same.profile_run_chunks == 1);
  CHECK(same.readahead.max == tuned.readahead.max);

  const FetchPolicy small = FetchPolicy::ForCache(tuned, 64u << 10, 10ull << 30);
  CHECK(small.max_run_chunks == 32);           // 2 MiB per request, as at 1 MiB chunks
  CHECK(small.prefetch_all_run_chunks == 32);
  CHECK(small.profile_threads == 32);          // more short requests in flight, at most 32
  CHECK(small.profile_run_chunks == 4);        // 8 MiB in flight in all: 32 runs of 4 x 64 KiB
}

TEST_CASE("read-ahead stays within a 16th of the cache, and is off (with prefetch-all) below two chunks") {
  FetchPolicy tuned;
  tuned.readahead.max = 16ull << 20;
  tuned.prefetch_all = true;
  const FetchPolicy mid = FetchPolicy::ForCache(tuned, 1u << 20, 64ull << 20);
  CHECK(mid.readahead.max == 4ull << 20);
  CHECK(mid.prefetch_all);
  const FetchPolicy tiny = FetchPolicy::ForCache(tuned, 1u << 20, 16ull << 20);  // 1 MiB window < 2 chunks
  CHECK(tiny.readahead.max == 0);
  CHECK_FALSE(tiny.prefetch_all);
}
