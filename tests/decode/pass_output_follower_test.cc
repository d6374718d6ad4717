// PassOutputFollower: a mount following another process's gzip pass copies
// the chunks that pass published, and tells what it cannot serve.
#include "decode/pass_output_follower.h"

#include <catch2/catch.hpp>
#include <vector>

#include "testing/temp_dir.h"

using namespace ocifs;
using Outcome = PassOutputFollower::Outcome;

namespace {

std::vector<uint8_t> FollowerPattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

}  // namespace

TEST_CASE("a follower serves published chunks, zero chunks as zeros, and nothing past what is published") {
  ocifs::testing::TempDir dir;
  auto shared = SharedPassProgress::Open(dir.path() + "/x.gzprogress");
  REQUIRE(shared.ok());
  constexpr size_t kChunk = 64 << 10;
  auto store = MakeMemoryDecodedStore(kChunk);
  PassOutputFollower follower(**shared, store);
  std::vector<uint8_t> out(1000);
  CHECK(follower.Copy(0, out) == Outcome::kAhead);  // nothing published yet

  const auto c0 = FollowerPattern(kChunk, 1);
  const auto c2 = FollowerPattern(kChunk, 2);
  (*shared)->Restart(kChunk);
  REQUIRE(store->Put(0, c0).ok());
  (*shared)->Publish(0, false);
  (*shared)->Publish(1, true);  // all zeros: not stored
  REQUIRE(store->Put(2, c2).ok());
  (*shared)->Publish(2, false);

  // Across all three chunks.
  std::vector<uint8_t> across(2 * kChunk + 40);  // to 10 bytes before the end of chunk 2
  REQUIRE(follower.Copy(kChunk - 50, across) == Outcome::kServed);
  CHECK(std::equal(across.begin(), across.begin() + 50, c0.end() - 50));
  CHECK(std::all_of(across.begin() + 50, across.begin() + 50 + kChunk, [](uint8_t b) { return b == 0; }));
  CHECK(std::equal(across.begin() + 50 + kChunk, across.end(), c2.begin()));
  CHECK(follower.served() == 1);
  // Past the published chunks: later.
  CHECK(follower.Copy(3 * kChunk - 10, out) == Outcome::kAhead);
}

TEST_CASE("a follower reports a published chunk missing from the store, or published in another chunk size") {
  ocifs::testing::TempDir dir;
  auto shared = SharedPassProgress::Open(dir.path() + "/x.gzprogress");
  REQUIRE(shared.ok());
  constexpr size_t kChunk = 64 << 10;
  PassOutputFollower follower(**shared, MakeMemoryDecodedStore(kChunk));
  std::vector<uint8_t> out(100);
  (*shared)->Restart(kChunk);
  (*shared)->Publish(0, false);  // published, but not in this store (evicted)
  CHECK(follower.Copy(10, out) == Outcome::kMissing);
  (*shared)->Restart(2 * kChunk);  // a pass whose cache has another chunk size
  (*shared)->Publish(0, true);
  CHECK(follower.Copy(10, out) == Outcome::kMissing);
}
