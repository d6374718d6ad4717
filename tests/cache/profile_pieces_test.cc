#include "cache/profile_pieces.h"

#include <catch2/catch.hpp>
#include <thread>

#include "base/memory_source.h"
#include "cache/cache_key.h"
#include "cache/cache_test_util.h"
#include "cache/cached_source.h"
#include "testing/counting_source.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kProfileChunk = 256 << 10;  // the cache's chunks: four pieces each
constexpr uint32_t kProfilePiece = 64 << 10;   // the profile's unit

std::shared_ptr<ChunkCache> ProfileOpenCache(const std::string& dir) {
  auto cache = ChunkCache::Open({.dir = dir, .chunk_size = kProfileChunk});
  REQUIRE(cache.ok());
  return *cache;
}

std::shared_ptr<AccessProfile> ProfileOf(std::vector<uint64_t> units) {
  auto p = std::make_shared<AccessProfile>();
  p->chunk_size = kProfilePiece;
  p->blobs[kKey] = std::move(units);
  return p;
}

FetchPolicy Policy(std::shared_ptr<AccessProfile> profile, unsigned piece_threads = 4) {
  FetchPolicy o;
  o.prefetch_threads = 0;  // no read-ahead, no small-miss path: only the profile fetches ahead
  o.exact_small_misses = false;
  o.profile = std::move(profile);
  o.profile_piece_threads = piece_threads;
  o.profile_piece_plan = {.gap = 1, .max_run = 4, .window = 64};
  return o;
}

bool Equal(const std::vector<uint8_t>& blob, uint64_t offset, const std::vector<uint8_t>& buf) {
  return std::equal(buf.begin(), buf.end(), blob.begin() + static_cast<long>(offset));
}

// A multi-range source over a blob, its cache, fetcher and pieces' store: the group tests' setup.
struct GroupRig {
  GroupRig(uint32_t seed, uint64_t size)
      : blob(Pattern(seed, size)),
        counting(std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey)),
        cache(ProfileOpenCache(tmp.path())),
        fetcher(std::make_shared<BlobFetcher>(counting, cache, kKey, nullptr, 1)) {
    counting->multi_range = true;
    auto opened = KeptPieceFile::Open(cache, DerivedCacheKey(kKey, "profile-pieces"), kProfilePiece);
    REQUIRE(opened.ok());
    store = *opened;
  }
  TempDir tmp;
  std::vector<uint8_t> blob;
  std::shared_ptr<CountingSource> counting;
  std::shared_ptr<ChunkCache> cache;
  std::shared_ptr<BlobFetcher> fetcher;
  std::shared_ptr<KeptPieceFile> store;
};

// Every unit is served by the pieces, exact (a unit at the blob's end may be short).
void CheckAllServed(ProfilePieces& pieces, const std::vector<uint8_t>& blob, const std::vector<uint64_t>& units) {
  for (uint64_t piece : units) {
    const uint64_t at = piece * kProfilePiece;
    std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(kProfilePiece, blob.size() - at)));
    auto served = pieces.Serve(at, buf);
    REQUIRE(served.ok());
    CHECK(*served);
    CHECK(Equal(blob, at, buf));
  }
}

}  // namespace

TEST_CASE("a profile finer than the chunks fetches its pieces alone, coalesced, and reads of them fetch nothing") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(1, 40 * kProfilePiece + 777);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  // 9 and 10 adjacent, 12 one piece after (gap filled), 30 alone, 40 the short last piece, 99 past the end.
  auto cache = ProfileOpenCache(tmp.path());
  CachedSource src(counting, cache, kKey, Policy(ProfileOf({30, 9, 10, 12, 40, 99})));
  src.WaitForProfile();
  CHECK(counting->reads == 3);                      // 9-12, 30, 40
  CHECK(counting->bytes == 4 * kProfilePiece + kProfilePiece + 777);  // not the 3 chunks of 256 KiB around them
  CHECK(cache->StoredIndexes(kKey).empty());        // kept as pieces, not chunks
  for (auto [offset, length] : std::vector<std::pair<uint64_t, size_t>>{
           {9 * kProfilePiece + 5, 1000}, {9 * kProfilePiece, 2 * kProfilePiece}, {30 * kProfilePiece + kProfilePiece - 10, 10}, {40 * kProfilePiece, 777},
           {11 * kProfilePiece + 3, 100}}) {
    std::vector<uint8_t> buf(length);
    REQUIRE(src.ReadAt(offset, buf).ok());
    CHECK(Equal(blob, offset, buf));
  }
  CHECK(counting->reads == 3);
  // A read reaching past the pieces takes the chunk path: right bytes, its chunks fetched.
  std::vector<uint8_t> buf(2 * kProfilePiece);
  REQUIRE(src.ReadAt(29 * kProfilePiece + 100, buf).ok());
  CHECK(Equal(blob, 29 * kProfilePiece + 100, buf));
  CHECK(counting->reads == 4);
}

TEST_CASE("a profile's pieces whose chunk the cache holds are not fetched again") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(3, 20 * kProfilePiece);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = ProfileOpenCache(tmp.path());
  {
    // Chunk 1 (pieces 4-7) read whole before the profile is known.
    CachedSource first(counting, cache, kKey, Policy(nullptr));
    std::vector<uint8_t> buf(kProfileChunk);
    REQUIRE(first.ReadAt(kProfileChunk, buf).ok());
  }
  REQUIRE(cache->StoredIndexes(kKey) == std::vector<uint64_t>{1});
  const int reads = counting->reads;
  const uint64_t bytes = counting->bytes;
  CachedSource src(counting, cache, kKey, Policy(ProfileOf({5, 6, 13})));
  src.WaitForProfile();
  CHECK(counting->reads == reads + 1);  // piece 13 alone
  CHECK(counting->bytes == bytes + kProfilePiece);
  for (uint64_t piece : {5, 6, 13}) {
    std::vector<uint8_t> buf(kProfilePiece);
    REQUIRE(src.ReadAt(piece * kProfilePiece, buf).ok());
    CHECK(Equal(blob, piece * kProfilePiece, buf));
  }
  CHECK(counting->reads == reads + 1);
}

TEST_CASE("kept profile pieces serve the next mount of the cache without a fetch") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(2, 20 * kProfilePiece);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = ProfileOpenCache(tmp.path());
  {
    CachedSource src(counting, cache, kKey, Policy(ProfileOf({3, 17})));
    src.WaitForProfile();
  }
  CHECK(counting->reads == 2);
  CachedSource again(counting, cache, kKey, Policy(ProfileOf({3, 17, 5})));
  again.WaitForProfile();
  CHECK(counting->reads == 3);  // only 5 was missing
  std::vector<uint8_t> buf(kProfilePiece);
  REQUIRE(again.ReadAt(17 * kProfilePiece, buf).ok());
  CHECK(Equal(blob, 17 * kProfilePiece, buf));
  CHECK(counting->reads == 3);
}

TEST_CASE("a profile of the chunks' size or coarser still fetches whole chunks") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(3, 8 * kProfileChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto profile = ProfileOf({1, 5});
  profile->chunk_size = kProfileChunk;
  auto cache = ProfileOpenCache(tmp.path());
  CachedSource src(counting, cache, kKey, Policy(profile));
  src.WaitForProfile();
  CHECK(counting->bytes == 2 * kProfileChunk);
  CHECK(cache->StoredIndexes(kKey).size() == 2);
}

TEST_CASE("a reader that needs a planned run before any worker fetches it itself, once") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(4, 16 * kProfilePiece);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = ProfileOpenCache(tmp.path());
  auto fetcher = std::make_shared<BlobFetcher>(counting, cache, kKey, nullptr, 1);
  auto store = KeptPieceFile::Open(cache, DerivedCacheKey(kKey, "profile-pieces"), kProfilePiece);
  REQUIRE(store.ok());
  const std::vector<uint64_t> units{2, 3, 8};
  ProfilePieces pieces(fetcher, *store, units, {.gap = 0, .max_run = 8, .window = 64});
  REQUIRE(pieces.run_count() == 2);
  CHECK(pieces.planned_bytes() == 3 * kProfilePiece);
  std::vector<uint8_t> buf(100);
  auto served = pieces.Serve(3 * kProfilePiece + 50, buf);  // in run 2-3: fetched by this reader
  REQUIRE(served.ok());
  CHECK(*served);
  CHECK(Equal(blob, 3 * kProfilePiece + 50, buf));
  CHECK(counting->reads == 1);
  CHECK(counting->bytes == 2 * kProfilePiece);
  CHECK(pieces.FetchNext());   // the worker skips 2-3 (taken) and fetches 8
  CHECK_FALSE(pieces.FetchNext());
  CHECK(counting->reads == 2);
  CHECK(pieces.stats().runs_by_readers == 1);
  // Bytes the profile does not name, and neither kept: not served here.
  auto other = pieces.Serve(5 * kProfilePiece, buf);
  REQUIRE(other.ok());
  CHECK_FALSE(*other);
  auto across = pieces.Serve(8 * kProfilePiece + kProfilePiece - 10, buf);  // 8 and 9: 9 is not the profile's
  REQUIRE(across.ok());
  CHECK_FALSE(*across);
}

TEST_CASE("a failed piece fetch leaves its reads to the chunk path") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(5, 16 * kProfilePiece);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = ProfileOpenCache(tmp.path());
  auto fetcher = std::make_shared<BlobFetcher>(counting, cache, kKey, nullptr, 1);
  auto store = KeptPieceFile::Open(cache, DerivedCacheKey(kKey, "profile-pieces"), kProfilePiece);
  REQUIRE(store.ok());
  const std::vector<uint64_t> units{4};
  ProfilePieces pieces(fetcher, *store, units, {});
  counting->fail = true;
  CHECK(pieces.FetchNext());
  std::vector<uint8_t> buf(10);
  auto served = pieces.Serve(4 * kProfilePiece, buf);
  REQUIRE(served.ok());
  CHECK_FALSE(*served);
  // Through the cache stage the read then fetches its chunk, and fails as the registry does.
  CachedSource src(counting, cache, kKey, Policy(ProfileOf({4})));
  src.WaitForProfile();
  CHECK_FALSE(src.ReadAt(4 * kProfilePiece, buf).ok());
  counting->fail = false;
  REQUIRE(src.ReadAt(4 * kProfilePiece, buf).ok());
  CHECK(Equal(blob, 4 * kProfilePiece, buf));
}

TEST_CASE("concurrent readers of a profile's pieces get the right bytes and each run is fetched once") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(6, 64 * kProfilePiece + 3);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  std::vector<uint64_t> units;
  for (uint64_t u = 0; u <= 64; u += 3) units.push_back(u);  // 0, 3, ..., 63: 22 separate pieces
  auto cache = ProfileOpenCache(tmp.path());
  FetchPolicy o = Policy(ProfileOf(units), 3);
  o.profile_piece_plan = {.gap = 0, .max_run = 1, .window = 64};
  CachedSource src(counting, cache, kKey, o);
  std::vector<std::thread> readers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      for (size_t i = 0; i < units.size(); ++i) {
        const uint64_t u = units[(i * 7 + static_cast<size_t>(t) * 5) % units.size()];
        std::vector<uint8_t> buf(1000);
        if (!src.ReadAt(u * kProfilePiece + 17, buf).ok() || !Equal(blob, u * kProfilePiece + 17, buf)) ++wrong;
      }
    });
  }
  for (auto& r : readers) r.join();
  src.WaitForProfile();
  CHECK(wrong == 0);
  CHECK(counting->reads == static_cast<int>(units.size()));  // one request per piece, none twice
}

TEST_CASE("a prefetch hint of bytes the profile's pieces hold fetches no chunk for them") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Pattern(7, 16 * kProfilePiece);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = ProfileOpenCache(tmp.path());
  FetchPolicy o = Policy(ProfileOf({4, 5, 6, 7}));  // chunk 1, whole
  o.prefetch_threads = 1;
  o.readahead.max = 0;
  CachedSource src(counting, cache, kKey, o);
  src.WaitForProfile();
  REQUIRE(counting->reads == 1);
  src.Prefetch(4 * kProfilePiece + 10, 2 * kProfilePiece);  // inside the pieces: nothing
  src.WaitForPrefetches();
  CHECK(counting->reads == 1);
  src.Prefetch(6 * kProfilePiece, 4 * kProfilePiece);  // pieces 6-7 held, chunk 2 (pieces 8-11) not: that chunk only
  src.WaitForPrefetches();
  CHECK(counting->reads == 2);
  CHECK(cache->StoredIndexes(kKey) == std::vector<uint64_t>{2});
}

TEST_CASE("a profile of 4 KiB units is fetched in 4 KiB pieces where allowed, in requests as many bytes as for 64 KiB pieces") {
  // A recorded profile's 4 KiB units, with profile_min_piece 4 KiB (a layer
  // read through an artifact's gzip index): the pieces are the units
  // themselves (not the 64 KiB around them), and the plan's gap and run
  // lengths (in 64 KiB pieces: 1 and 4 here) keep their bytes: 64 KiB gaps,
  // 256 KiB runs. By default the units merge into 64 KiB pieces.
  TempDir tmp;
  constexpr uint64_t kFine = 4096;
  const std::vector<uint8_t> blob = Pattern(7, 600 * kFine);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto profile = ProfileOf({});
  profile->chunk_size = kFine;
  // 100-101; 110 (within 64 KiB: joins); 300 alone; 400-479 (320 KiB: two runs of at most 256 KiB).
  std::vector<uint64_t> units = {100, 101, 110, 300};
  for (uint64_t u = 400; u < 480; ++u) units.push_back(u);
  profile->blobs[kKey] = units;
  {
    TempDir coarse;
    CachedSource src(counting, ProfileOpenCache(coarse.path()), kKey, Policy(profile));
    src.WaitForProfile();
    // 64 KiB pieces 6 (units 96-111), 18 (288-303), 25-29 (400-479): one run each side of the gaps.
    CHECK(counting->bytes == 7 * kProfilePiece);
  }
  counting->reads = 0;
  counting->bytes = 0;
  auto cache = ProfileOpenCache(tmp.path());
  FetchPolicy fine = Policy(profile);
  fine.profile_min_piece = kFine;
  CachedSource src(counting, cache, kKey, fine);
  src.WaitForProfile();
  CHECK(counting->reads == 4);
  CHECK(counting->bytes == (11 + 1 + 80) * kFine);  // 100-110 (the gap filled), 300, 400-479
  for (auto [offset, length] : std::vector<std::pair<uint64_t, size_t>>{
           {100 * kFine + 7, 2 * kFine}, {300 * kFine, kFine}, {400 * kFine + 1, 79 * kFine}}) {
    std::vector<uint8_t> buf(length);
    REQUIRE(src.ReadAt(offset, buf).ok());
    CHECK(Equal(blob, offset, buf));
  }
  CHECK(counting->reads == 4);  // all served from the pieces
}

TEST_CASE("runs are taken in groups, one multi-range request each, and pieces kept as their bytes come") {
  GroupRig rig(7, 40 * kProfilePiece + 777);
  auto& counting = rig.counting;
  counting->piece = 5000;  // pieces arrive split across consumer calls
  counting->repeat_first = 70000;  // the first range comes twice from its start (a retry)
  // Runs 9-10, 20, 30, 40 (the short last piece): four runs, 5 pieces, one request.
  const std::vector<uint64_t> units{30, 9, 10, 20, 40};
  ProfilePieces pieces(rig.fetcher, rig.store, units, {.gap = 0, .max_run = 8, .window = 64});
  REQUIRE(pieces.run_count() == 4);
  CHECK(pieces.FetchNext());
  CHECK_FALSE(pieces.FetchNext());
  CHECK(counting->range_requests == 1);
  CHECK(counting->reads == 0);
  CHECK(pieces.stats().requests == 1);
  CHECK(pieces.stats().runs_fetched == 4);
  CHECK(pieces.stats().bytes_fetched == 4 * kProfilePiece + 777);
  CHECK(pieces.together());
  CheckAllServed(pieces, rig.blob, units);
  CHECK(counting->reads == 0);
}

TEST_CASE("a group stops at ProfilePieces::kGroupBytes") {
  GroupRig rig(8, 64 * kProfilePiece);
  std::vector<uint64_t> units;
  for (uint64_t u = 0; u < 64; u += 2) units.push_back(u);  // 32 runs of one piece: 2 MiB
  ProfilePieces pieces(rig.fetcher, rig.store, units, {.gap = 0, .max_run = 1, .window = 64});
  REQUIRE(pieces.run_count() == 32);
  while (pieces.FetchNext()) {
  }
  CHECK(rig.counting->range_requests == static_cast<int>(32 * kProfilePiece / ProfilePieces::kGroupBytes));
  CHECK(pieces.stats().runs_fetched == 32);
}

TEST_CASE("a source that answers one range of a group: the rest one run per request, and no group after") {
  GroupRig rig(9, 40 * kProfilePiece);
  auto& counting = rig.counting;
  counting->ranges_answered = 1;
  const std::vector<uint64_t> units{1, 5, 9, 13, 17, 21};
  ProfilePieces pieces(rig.fetcher, rig.store, units, {.gap = 0, .max_run = 8, .window = 64});
  REQUIRE(pieces.run_count() == 6);
  CHECK(pieces.FetchNext());  // one group: run 1 came, 5..21 one by one
  CHECK_FALSE(pieces.together());
  CHECK(counting->range_requests == 1);
  CHECK(counting->reads == 5);
  CHECK_FALSE(pieces.FetchNext());
  CHECK(pieces.stats().runs_fetched == 6);
  CheckAllServed(pieces, rig.blob, units);
  CHECK(counting->reads == 5);
}

TEST_CASE("a group whose request fails leaves its runs' reads to the chunk path") {
  GroupRig rig(10, 16 * kProfilePiece);
  auto& counting = rig.counting;
  const std::vector<uint64_t> units{2, 6};
  ProfilePieces pieces(rig.fetcher, rig.store, units, {.gap = 0, .max_run = 8, .window = 64});
  counting->fail = true;
  CHECK(pieces.FetchNext());
  CHECK(counting->range_requests == 1);
  CHECK(counting->reads == 0);  // not asked again one by one: the registry is down
  CHECK(pieces.together());
  std::vector<uint8_t> buf(10);
  for (uint64_t piece : units) {
    auto served = pieces.Serve(piece * kProfilePiece, buf);
    REQUIRE(served.ok());
    CHECK_FALSE(*served);
  }
}
