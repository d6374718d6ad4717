#include "cache/chunk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <latch>
#include <thread>

#include "cache/chunk_cache_rig.h"
#include "cache/chunk_format.h"

using namespace ocifs;
using namespace ocifs::testing;
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kChunk = kTestChunkSize;
constexpr uint64_t kFileBytes = kChunk + kChunkHeaderSize;

std::shared_ptr<ChunkCache> OpenCache(const std::string& dir, uint64_t max_bytes = 1ull << 30) {
  return OpenTestCache(dir, max_bytes);
}

void SetMtime(const fs::path& p, int64_t seconds_ago) {
  timespec ts[2];
  ::clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= seconds_ago;
  ts[1] = ts[0];
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0);
}

// `outs.size()` readers of chunk `index` at once, reader t into outs[t]. The
// first fetch waits until every reader has missed (and so joined its flight
// or led it), then returns first_fetch(); later fetches fill the chunk with
// Pattern(index), or fail kUnavailable at once if !later_succeed. Returns
// each reader's status; *calls counts the fetches.
std::vector<Status> ReadersOfOneFetch(ChunkCache& cache, uint64_t index, std::vector<std::vector<uint8_t>>& outs,
                                      std::atomic<int>* calls, const std::function<Status()>& first_fetch,
                                      bool later_succeed = true) {
  const uint64_t misses_before = cache.stats().misses;
  std::atomic<bool> gate{false};
  std::vector<Status> results(outs.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < outs.size(); ++t) {
    threads.emplace_back([&, t] {
      results[t] = cache.Read(kKey, index, outs[t], [&](std::span<uint8_t> out) {
        if (++*calls > 1) {
          if (!later_succeed) return Unavailable("registry still down");
          auto p = Pattern(index, out.size());
          std::copy(p.begin(), p.end(), out.begin());
          return Status::Ok();
        }
        while (!gate) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return first_fetch();
      });
    });
  }
  while (cache.stats().misses < misses_before + outs.size()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  gate = true;
  for (auto& th : threads) th.join();
  return results;
}

}  // namespace

TEST_CASE("chunk cache serves a hit after a miss and fetches once") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::atomic<int> calls{0};
  std::vector<uint8_t> out(kChunk);
  REQUIRE(cache->Read(kKey, 3, out, CountingFetch{3, &calls}).ok());
  REQUIRE(out == Pattern(3, kChunk));
  std::fill(out.begin(), out.end(), 0);
  REQUIRE(cache->Read(kKey, 3, out, CountingFetch{3, &calls}).ok());
  REQUIRE(out == Pattern(3, kChunk));
  REQUIRE(calls == 1);
  auto s = cache->stats();
  CHECK(s.hits == 1);
  CHECK(s.misses == 1);
  CHECK(s.fetched_bytes == kChunk);
  CHECK(fs::file_size(ChunkPath(tmp.path(), kChunk, kKey, 3)) == kFileBytes);
}

TEST_CASE("chunk cache keeps a short last chunk at its own length") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::atomic<int> calls{0};
  std::vector<uint8_t> out(1000);
  REQUIRE(cache->Read(kKey, 9, out, CountingFetch{9, &calls}).ok());
  CHECK(HasChunk(*cache, kKey, 9, 1000));
  // Asked with another length, the file does not match and is not served.
  std::vector<uint8_t> wrong(kChunk);
  auto hit = cache->Lookup(kKey, 9, wrong);
  REQUIRE(hit.ok());
  CHECK_FALSE(*hit);
}

TEST_CASE("chunk cache single-flight: eight readers of a missing chunk share one fetch") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::atomic<int> calls{0};
  std::latch start(8);
  std::vector<std::vector<uint8_t>> outs(8, std::vector<uint8_t>(kChunk));
  std::vector<Status> results(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      results[t] = cache->Read(kKey, 0, outs[t], [&](std::span<uint8_t> out) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return CountingFetch{0, &calls}(out);
      });
    });
  }
  for (auto& th : threads) th.join();
  CHECK(calls == 1);
  for (int t = 0; t < 8; ++t) {
    CHECK(results[t].ok());
    CHECK(outs[t] == Pattern(0, kChunk));
  }
}

TEST_CASE("chunk cache returns a fetch refused for good to every waiter and stores nothing") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::atomic<int> calls{0};
  std::vector<std::vector<uint8_t>> outs(4, std::vector<uint8_t>(kChunk));
  auto results = ReadersOfOneFetch(*cache, 1, outs, &calls, [] { return PermissionDenied("registry refuses the blob"); });
  CHECK(calls == 1);
  for (const auto& r : results) CHECK(r.code() == Code::kPermissionDenied);
  CHECK_FALSE(fs::exists(ChunkPath(tmp.path(), kChunk, kKey, 1)));
  CHECK_FALSE(HasChunk(*cache, kKey, 1));
  std::vector<uint8_t> out(kChunk);
  REQUIRE(cache->Read(kKey, 1, out, CountingFetch{1, &calls}).ok());
  CHECK(calls == 2);
  CHECK(out == Pattern(1, kChunk));
}

// Readers that joined a fetch begun during a registry outage: the fetch
// fails kUnavailable, the registry is back, and they ask again themselves.
TEST_CASE("chunk cache: readers that joined a fetch that failed unavailable ask again and get the bytes") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::atomic<int> calls{0};
  std::vector<std::vector<uint8_t>> outs(4, std::vector<uint8_t>(kChunk));
  auto results =
      ReadersOfOneFetch(*cache, 2, outs, &calls, [] { return Unavailable("registry 127.0.0.1:5000: no answer in 4 s"); });
  // The reader whose fetch failed gets its error; the three that joined it
  // share one second fetch.
  int failed = 0;
  for (size_t t = 0; t < outs.size(); ++t) {
    if (results[t].ok()) {
      CHECK(outs[t] == Pattern(2, kChunk));
    } else {
      CHECK(results[t].code() == Code::kUnavailable);
      ++failed;
    }
  }
  CHECK(failed == 1);
  CHECK(calls == 2);
  CHECK(HasChunk(*cache, kKey, 2));
}

TEST_CASE("chunk cache: a reader that joined a failing fetch asks again only once") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::atomic<int> calls{0};
  std::vector<std::vector<uint8_t>> outs(2, std::vector<uint8_t>(kChunk));
  // Every fetch fails: the first after the gate, the joined reader's at once.
  auto results = ReadersOfOneFetch(
      *cache, 4, outs, &calls, [] { return Unavailable("registry down"); }, /*later_succeed=*/false);
  CHECK(calls == 2);  // the leader's fetch, and the joined reader's one more
  for (const auto& r : results) CHECK(r.code() == Code::kUnavailable);
  CHECK_FALSE(HasChunk(*cache, kKey, 4));
}

TEST_CASE("chunk cache drops a damaged chunk file and refetches instead of serving it") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::vector<uint8_t> good = Pattern(2, kChunk);
  REQUIRE(cache->Store(kKey, 1, Pattern(1, kChunk)).ok());
  REQUIRE(cache->Store(kKey, 2, good).ok());
  const fs::path path = ChunkPath(tmp.path(), kChunk, kKey, 2);

  auto patch = [&](uint64_t offset, std::vector<uint8_t> bytes) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  SECTION("truncated inside the header") { fs::resize_file(path, 30); }
  SECTION("truncated inside the data") { fs::resize_file(path, kChunkHeaderSize + 100); }
  SECTION("emptied") { fs::resize_file(path, 0); }
  SECTION("a data byte flipped") { patch(kChunkHeaderSize + 777, {static_cast<uint8_t>(good[777] ^ 0x10)}); }
  SECTION("the last data byte flipped") { patch(kFileBytes - 1, {static_cast<uint8_t>(good.back() ^ 1)}); }
  SECTION("garbage header") { patch(0, std::vector<uint8_t>(kChunkHeaderSize, 0xab)); }
  SECTION("the data length field changed") { patch(32, {0x00, 0x10, 0x00, 0x00}); }
  SECTION("trailing bytes appended") { patch(kFileBytes, {1, 2, 3}); }
  SECTION("another chunk's file in its place") {
    fs::copy_file(ChunkPath(tmp.path(), kChunk, kKey, 1), path, fs::copy_options::overwrite_existing);
  }
  SECTION("another blob's file in its place") {
    REQUIRE(cache->Store(Digest('b'), 2, good).ok());
    fs::copy_file(ChunkPath(tmp.path(), kChunk, Digest('b'), 2), path, fs::copy_options::overwrite_existing);
  }

  std::atomic<int> calls{0};
  std::vector<uint8_t> out(kChunk);
  REQUIRE(cache->Read(kKey, 2, out, CountingFetch{2, &calls}).ok());
  CHECK(calls == 1);
  CHECK(out == good);
  CHECK(cache->stats().corrupt_dropped == 1);
  // The refetched chunk was stored again, whole.
  CHECK(fs::file_size(path) == kFileBytes);
  CHECK(HasChunk(*cache, kKey, 2));
}

TEST_CASE("chunk cache evicts the least recently used chunk first and stays under its bound") {
  TempDir tmp;
  const uint64_t max = 10 * kFileBytes;
  auto cache = OpenCache(tmp.path(), max);
  for (uint64_t i = 0; i < 10; ++i) REQUIRE(cache->Store(kKey, i, Pattern(i, kChunk)).ok());
  CHECK(cache->stats().evictions == 0);
  REQUIRE(HasChunk(*cache, kKey, 0));  // 0 is now the most recently used
  REQUIRE(cache->Store(kKey, 10, Pattern(10, kChunk)).ok());
  // Over the bound: down to 90% (9 files) by dropping the two least recent, 1 and 2.
  CHECK(cache->stats().evictions == 2);
  CHECK(ChunkBytesOnDisk(tmp.path()) <= max);
  CHECK_FALSE(HasChunk(*cache, kKey, 1));
  CHECK_FALSE(HasChunk(*cache, kKey, 2));
  for (uint64_t i : {0, 3, 4, 5, 6, 7, 8, 9, 10}) CHECK(HasChunk(*cache, kKey, i));
}

TEST_CASE("chunk cache ranks another process's chunks by the mtime a hit refreshes") {
  TempDir tmp;
  const uint64_t max = 10 * kFileBytes;
  {
    auto writer = OpenCache(tmp.path(), max);
    for (uint64_t i = 0; i < 10; ++i) REQUIRE(writer->Store(kKey, i, Pattern(i, kChunk)).ok());
  }
  // As if written long ago, oldest first.
  for (uint64_t i = 0; i < 10; ++i) SetMtime(ChunkPath(tmp.path(), kChunk, kKey, i), 1000 - int64_t(i));
  auto reader = OpenCache(tmp.path(), max);
  REQUIRE(HasChunk(*reader, kKey, 0));  // the hit refreshes 0's mtime
  auto other = OpenCache(tmp.path(), max);  // knows only the mtimes
  REQUIRE(other->Store(Digest('c'), 0, Pattern(0, kChunk)).ok());
  CHECK(other->stats().evictions == 2);
  CHECK(fs::exists(ChunkPath(tmp.path(), kChunk, kKey, 0)));
  CHECK_FALSE(fs::exists(ChunkPath(tmp.path(), kChunk, kKey, 1)));
  CHECK_FALSE(fs::exists(ChunkPath(tmp.path(), kChunk, kKey, 2)));
  CHECK(fs::exists(ChunkPath(tmp.path(), kChunk, kKey, 3)));
}

TEST_CASE("two chunk caches on one directory see each other's chunks and stay bounded together") {
  TempDir tmp;
  const uint64_t max = 8 * kFileBytes;
  auto a = OpenCache(tmp.path(), max);
  auto b = OpenCache(tmp.path(), max);
  const std::string key2 = Digest('d');
  for (uint64_t i = 0; i < 6; ++i) REQUIRE(a->Store(kKey, i, Pattern(i, kChunk)).ok());
  for (uint64_t i = 0; i < 6; ++i) CHECK(HasChunk(*b, kKey, i));
  for (uint64_t i = 0; i < 6; ++i) {
    REQUIRE(b->Store(key2, i, Pattern(i, kChunk)).ok());
    CHECK(ChunkBytesOnDisk(tmp.path()) <= max);
    REQUIRE(a->Store(kKey, 6 + i, Pattern(6 + i, kChunk)).ok());
    CHECK(ChunkBytesOnDisk(tmp.path()) <= max);
  }
  CHECK(a->stats().evictions + b->stats().evictions > 0);
  // Whatever is left is right, from either side.
  int left = 0;
  for (uint64_t i = 0; i < 12; ++i) left += HasChunk(*a, kKey, i) + HasChunk(*b, kKey, i);
  for (uint64_t i = 0; i < 6; ++i) left += HasChunk(*a, key2, i) + HasChunk(*b, key2, i);
  CHECK(left > 0);
}

TEST_CASE("chunk cache counts what is already on disk when it opens") {
  TempDir tmp;
  const uint64_t max = 10 * kFileBytes;
  {
    auto big = OpenCache(tmp.path(), 100 * kFileBytes);
    for (uint64_t i = 0; i < 20; ++i) REQUIRE(big->Store(kKey, i, Pattern(i, kChunk)).ok());
  }
  auto small = OpenCache(tmp.path(), max);
  CHECK(small->stats().evictions == 11);  // down to 9 files
  CHECK(ChunkBytesOnDisk(tmp.path()) <= max);
}

TEST_CASE("chunk cache removes a crashed writer's old temp files when it opens, not a live one's") {
  TempDir tmp;
  { auto cache = OpenCache(tmp.path()); REQUIRE(cache->Store(kKey, 0, Pattern(0, kChunk)).ok()); }
  const fs::path key_dir = ChunkPath(tmp.path(), kChunk, kKey, 0).parent_path();
  const fs::path old_tmp = key_dir / ".tmp-999999-1";
  const fs::path live_tmp = key_dir / ".tmp-999999-2";
  std::ofstream(old_tmp) << "half a chunk";
  std::ofstream(live_tmp) << "being written";
  SetMtime(old_tmp, 120);
  // Without the scan at open (another instance of this process just did it), nothing is removed.
  auto unscanned = ChunkCache::Open({.dir = tmp.path(), .chunk_size = kChunk, .scan_at_open = false});
  REQUIRE(unscanned.ok());
  CHECK(fs::exists(old_tmp));
  auto cache = OpenCache(tmp.path());
  CHECK_FALSE(fs::exists(old_tmp));
  CHECK(fs::exists(live_tmp));
  CHECK(HasChunk(*cache, kKey, 0));
}

TEST_CASE("chunk cache rejects keys that are not digests") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::vector<uint8_t> data(100, 7);
  std::atomic<int> calls{0};
  for (std::string key : {std::string("../x"), kKey + "/../../x", kKey + ":..", std::string("sha256:/etc")}) {
    INFO(key);
    CHECK(cache->Store(key, 0, data).code() == Code::kInvalidArgument);
    CHECK(cache->Lookup(key, 0, data).status().code() == Code::kInvalidArgument);
    CHECK(cache->Read(key, 0, data, CountingFetch{0, &calls}).code() == Code::kInvalidArgument);
    CHECK(cache->SidePath(key, "gzidx").empty());
  }
  CHECK(calls == 0);
  CHECK(cache->Store(kKey, 0, std::vector<uint8_t>(kChunk + 1)).code() == Code::kInvalidArgument);
}

TEST_CASE("chunk cache side paths live in an existing directory inside the cache") {
  TempDir tmp;
  auto cache = OpenCache(tmp.path());
  std::string p = cache->SidePath(kKey, "gzidx");
  CHECK(p == tmp.path() + "/side/" + kKey + ".gzidx");
  CHECK(fs::is_directory(fs::path(p).parent_path()));
  CHECK(cache->SidePath(kKey, "../x").empty());
}

TEST_CASE("chunk cache refuses bad options") {
  TempDir tmp;
  CHECK(ChunkCache::Open({.dir = tmp.path(), .chunk_size = 3 << 16}).status().code() == Code::kInvalidArgument);
  CHECK(ChunkCache::Open({.dir = tmp.path(), .chunk_size = 4096}).status().code() == Code::kInvalidArgument);
  CHECK(ChunkCache::Open({.dir = tmp.path(), .max_bytes = kChunk, .chunk_size = kChunk}).status().code() ==
        Code::kInvalidArgument);
  CHECK(ChunkCache::Open({.dir = ""}).status().code() == Code::kInvalidArgument);
  auto nested = ChunkCache::Open({.dir = tmp.path() + "/a/b/c", .chunk_size = kChunk});
  REQUIRE(nested.ok());
  struct stat st;
  REQUIRE(::stat((tmp.path() + "/a/b/c").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
}

TEST_CASE("chunk cache ReadPart reads only the bytes asked for of a chunk this process checked") {
  TempDir tmp;
  const auto data = Pattern(3, kChunk);
  {
    auto writer = OpenCache(tmp.path());
    REQUIRE(writer->Store(kKey, 3, data).ok());
  }
  auto cache = OpenCache(tmp.path());  // another process: has not checked chunk 3
  std::vector<uint8_t> part(100);
  CHECK_FALSE(cache->ReadPart(kKey, 3, kChunk, 500, part));
  std::vector<uint8_t> whole(kChunk);
  REQUIRE(cache->Read(kKey, 3, whole, [](std::span<uint8_t>) { return Unavailable("no fetch"); }).ok());
  REQUIRE(cache->ReadPart(kKey, 3, kChunk, 500, part));
  CHECK(std::equal(part.begin(), part.end(), data.begin() + 500));
  CHECK_FALSE(cache->ReadPart(kKey, 3, kChunk, kChunk - 50, part));  // past the chunk
  CHECK_FALSE(cache->ReadPart(kKey, 3, kChunk - 1, 0, part));        // another length than the file's
  // Truncated behind its back: a miss, never short data.
  fs::resize_file(ChunkPath(tmp.path(), kChunk, kKey, 3), kChunkHeaderSize + 1000);
  CHECK_FALSE(cache->ReadPart(kKey, 3, kChunk, 0, part));
}

TEST_CASE("a chunk cache that does not track checked chunks serves no partial reads") {
  TempDir tmp;
  const auto data = Pattern(4, kChunk);
  auto cache = ChunkCache::Open({.dir = tmp.path(), .chunk_size = kChunk, .track_verified = false});
  REQUIRE(cache.ok());
  REQUIRE((*cache)->Store(kKey, 4, data).ok());
  std::vector<uint8_t> whole(kChunk), part(100);
  auto hit = (*cache)->Lookup(kKey, 4, whole);
  REQUIRE((hit.ok() && *hit));
  CHECK(whole == data);
  CHECK_FALSE((*cache)->ReadPart(kKey, 4, kChunk, 0, part));
}
