#include "cache/cached_source.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "base/memory_source.h"
#include "cache/cache_test_util.h"
#include "testing/counting_source.h"
#include "testing/gated_source.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kSourceChunk = 64 << 10;

std::vector<uint8_t> Blob(size_t n) { return Pattern(12345, n); }

std::shared_ptr<ChunkCache> OpenSourceCache(const std::string& dir) {
  auto cache = ChunkCache::Open({.dir = dir, .chunk_size = kSourceChunk});
  REQUIRE(cache.ok());
  return *cache;
}

FetchPolicy Options(unsigned threads, size_t run = 4, bool all = false, size_t all_run = 2) {
  FetchPolicy o;
  o.prefetch_threads = threads;
  o.max_run_chunks = run;
  o.prefetch_all = all;
  o.prefetch_all_run_chunks = all_run;
  o.exact_small_misses = false;  // the tests below count whole-chunk fetches; see "small misses" for it
  return o;
}

// The chunks of kKey on disk in `cache`.
std::set<uint64_t> Stored(const ChunkCache& cache) {
  std::vector<uint64_t> v = cache.StoredIndexes(kKey);
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("cached source reads equal the inner bytes at any offset and length") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(5 * kSourceChunk + 1234);
  auto inner = std::make_shared<MemorySource>(blob);
  CachedSource src(inner, OpenSourceCache(tmp.path()), kKey);
  REQUIRE(src.size() == blob.size());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) {
    uint64_t offset = rng() % (blob.size() + 100);
    size_t len = rng() % (3 * kSourceChunk);
    if (i % 5 == 0) offset = (rng() % 6) * kSourceChunk - (rng() % 2);  // around a boundary
    if (offset > blob.size() + 100) offset = 0;
    std::vector<uint8_t> buf(len, 0xee);
    auto n = src.ReadAt(offset, buf);
    REQUIRE(n.ok());
    size_t want = offset >= blob.size() ? 0 : std::min<size_t>(len, blob.size() - offset);
    INFO("offset " << offset << " len " << len);
    REQUIRE(*n == want);
    REQUIRE(std::equal(buf.begin(), buf.begin() + want, blob.begin() + offset));
  }
}

TEST_CASE("cached source reads the short last chunk and stops at the end") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(2 * kSourceChunk + 10);
  CachedSource src(std::make_shared<MemorySource>(blob), OpenSourceCache(tmp.path()), kKey);
  std::vector<uint8_t> buf(100);
  auto tail = src.ReadAt(blob.size() - 4, buf);
  REQUIRE(tail.ok());
  CHECK(*tail == 4);
  CHECK(std::equal(buf.begin(), buf.begin() + 4, blob.end() - 4));
  auto at_end = src.ReadAt(blob.size(), buf);
  REQUIRE(at_end.ok());
  CHECK(*at_end == 0);
  auto past = src.ReadAt(blob.size() + 5000, buf);
  REQUIRE(past.ok());
  CHECK(*past == 0);
}

TEST_CASE("cached source fetches each chunk once, then serves repeats from the cache") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(3 * kSourceChunk + 500);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  {
    CachedSource src(counting, OpenSourceCache(tmp.path()), kKey);
    std::vector<uint8_t> buf(kSourceChunk + 200);
    REQUIRE(src.ReadAt(kSourceChunk - 100, buf).ok());  // touches chunks 0, 1 and 2
    CHECK(counting->reads == 1);           // adjacent misses: one inner read
    CHECK(counting->bytes == 3 * kSourceChunk);  // whole chunks
    REQUIRE(src.ReadAt(kSourceChunk - 100, buf).ok());
    CHECK(counting->reads == 1);
  }
  // A later mount (a new cache on the same dir) finds them too.
  CachedSource again(counting, OpenSourceCache(tmp.path()), kKey);
  std::vector<uint8_t> all(blob.size());
  auto n = again.ReadAt(0, all);
  REQUIRE(n.ok());
  CHECK(all == blob);
  CHECK(counting->reads == 2);  // only chunk 3 was new
}

TEST_CASE("cached source returns inner errors and caches nothing from them") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(counting, cache, kKey, Options(0));
  std::vector<uint8_t> buf(10);
  counting->fail = true;
  auto bad = src.ReadAt(0, buf);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kUnavailable);
  CHECK(bad.status().message().find("chunk 0") != std::string::npos);
  counting->fail = false;
  auto good = src.ReadAt(0, buf);
  REQUIRE(good.ok());
  CHECK(std::equal(buf.begin(), buf.end(), blob.begin()));
  CHECK(cache->stats().fetched_bytes == kSourceChunk);
}

TEST_CASE("cached source refuses an inner source shorter than it claims") {
  class Liar final : public ByteSource {
   public:
    uint64_t size() const override { return 2 * kSourceChunk; }
    Result<size_t> ReadAt(uint64_t, std::span<uint8_t> buf) const override { return buf.size() / 2; }
  };
  TempDir tmp;
  CachedSource src(std::make_shared<Liar>(), OpenSourceCache(tmp.path()), kKey);
  std::vector<uint8_t> buf(10);
  CHECK(src.ReadAt(0, buf).status().code() == Code::kCorrupt);
}

TEST_CASE("cached source with an invalid key fails every read") {
  TempDir tmp;
  CachedSource src(MemorySource::FromString("abc"), OpenSourceCache(tmp.path()), "sha256:../../etc");
  std::vector<uint8_t> buf(3);
  CHECK(src.ReadAt(0, buf).status().code() == Code::kInvalidArgument);
}

TEST_CASE("cached source: a small miss fetches its own bytes and the whole chunk follows") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(4 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = OpenSourceCache(tmp.path());
  FetchPolicy o = Options(2);
  o.exact_small_misses = true;
  {
    CachedSource src(counting, cache, kKey, o);
    std::vector<uint8_t> buf(100);
    REQUIRE(*src.ReadAt(2 * kSourceChunk + 10, buf) == 100);
    CHECK(std::equal(buf.begin(), buf.end(), blob.begin() + 2 * kSourceChunk + 10));
    src.WaitForPrefetches();
    CHECK(counting->reads == 2);  // the 100 bytes, then chunk 2
    CHECK(counting->bytes == 100 + kSourceChunk);
    std::vector<uint8_t> more(kSourceChunk / 8);  // the chunk is there now
    REQUIRE(src.ReadAt(2 * kSourceChunk + 5000, more).ok());
    CHECK(std::equal(more.begin(), more.end(), blob.begin() + 2 * kSourceChunk + 5000));
    CHECK(counting->reads == 2);
    std::vector<uint8_t> big(kSourceChunk / 2);  // large reads take the whole-chunk path
    REQUIRE(src.ReadAt(kSourceChunk, big).ok());
    CHECK(counting->reads == 3);
    CHECK(counting->bytes == 100 + 2 * kSourceChunk);
  }
  // Another process: chunk 2 is on disk, so a small read of it reads the file, not the blob.
  CachedSource again(counting, OpenSourceCache(tmp.path()), kKey, o);
  std::vector<uint8_t> buf(10);
  REQUIRE(again.ReadAt(2 * kSourceChunk + 77, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), blob.begin() + 2 * kSourceChunk + 77));
  CHECK(counting->reads == 3);
}

TEST_CASE("cached source: a small miss that fails returns the error naming the bytes") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(2 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  counting->fail = true;
  FetchPolicy o = Options(1);
  o.exact_small_misses = true;
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, o);
  std::vector<uint8_t> buf(10);
  auto bad = src.ReadAt(kSourceChunk + 3, buf);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("bytes " + std::to_string(kSourceChunk + 3)) != std::string::npos);
  src.WaitForPrefetches();
}

TEST_CASE("cached source: a small miss's chunk is owed, so FinishOwedFetches stores it before the scheduler stops") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(4 * kSourceChunk);
  // Whole-chunk reads (the fetches, not a small miss's own bytes) wait for Open.
  auto gated = std::make_shared<GatedSource>(std::make_shared<MemorySource>(blob), blob.size(), kSourceChunk);
  auto cache = OpenSourceCache(tmp.path());
  auto scheduler = std::make_shared<Scheduler>();
  FetchPolicy o = Options(1);  // one fetch at a time: the chunks after the first wait in the queue
  o.exact_small_misses = true;
  o.scheduler = scheduler;
  o.readahead.max = 0;  // no hints: only the owed fetches
  CachedSource src(gated, cache, kKey, o);
  std::vector<uint8_t> buf(100);
  for (uint64_t chunk : {0, 1, 2}) REQUIRE(*src.ReadAt(chunk * kSourceChunk + 10, buf) == 100);
  std::atomic<bool> finished{false};
  std::thread finish([&] {
    src.FinishOwedFetches();
    finished = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(finished);  // the fetches are held: it waits for them
  gated->Open();
  finish.join();
  scheduler->Stop();  // would drop whatever were still queued
  CHECK(Stored(*cache) == std::set<uint64_t>{0, 1, 2});
}

TEST_CASE("cached source: when finishing, the first owed fetch that fails drops the rest") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(4 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  counting->fail = true;  // a registry that went away: each fetch would wait for its timeout
  auto gated = std::make_shared<GatedSource>(counting, blob.size(), kSourceChunk);
  auto scheduler = std::make_shared<Scheduler>();
  FetchPolicy o = Options(1);
  o.exact_small_misses = true;
  o.scheduler = scheduler;
  o.readahead.max = 0;
  CachedSource src(gated, OpenSourceCache(tmp.path()), kKey, o);
  std::vector<uint8_t> buf(100);
  for (uint64_t chunk : {0, 1, 2}) CHECK_FALSE(src.ReadAt(chunk * kSourceChunk + 10, buf).ok());
  CHECK(counting->reads == 3);  // the reads' own bytes; their chunks are owed, the first one held
  std::thread finish([&] { src.FinishOwedFetches(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  gated->Open();
  finish.join();
  CHECK(counting->reads == 4);  // chunk 0 failed; chunks 1 and 2 were dropped, not tried
  scheduler->Stop();
}

TEST_CASE("cached source fetches the missing runs around a cached chunk with one inner read each") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(5 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, Options(0));
  std::vector<uint8_t> one(10);
  REQUIRE(src.ReadAt(2 * kSourceChunk + 5, one).ok());  // chunk 2 cached
  CHECK(counting->reads == 1);
  std::vector<uint8_t> all(blob.size());
  REQUIRE(src.ReadAt(0, all).ok());
  CHECK(all == blob);
  CHECK(counting->reads == 3);  // chunks 0-1 and 3-4, one read each
  CHECK(counting->bytes == 5 * kSourceChunk);
}

TEST_CASE("cached source fetches each chunk once when many threads read the same range at once") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(8 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, Options(0));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> buf(3 * kSourceChunk);
      const uint64_t at = (t % 6) * kSourceChunk + 7;
      auto n = src.ReadAt(at, buf);
      if (!n.ok() || !std::equal(buf.begin(), buf.begin() + *n, blob.begin() + at)) ++bad;
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad == 0);
  CHECK(counting->bytes == 8 * kSourceChunk);
}

TEST_CASE("cached source reads ahead on sequential access, growing the window, and not on random access") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(64 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  FetchPolicy options = Options(2, 2);
  options.readahead = {.initial = kSourceChunk, .max = 4 * kSourceChunk, .min_run = 2 * kSourceChunk};
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, options);
  std::vector<uint8_t> buf(kSourceChunk / 2);
  // Random: far-apart reads fetch only their own chunks.
  for (uint64_t c : {40, 10, 50, 20}) {
    REQUIRE(src.ReadAt(c * kSourceChunk, buf).ok());
    src.WaitForPrefetches();
  }
  CHECK(counting->bytes == 4 * kSourceChunk);
  // Sequential from 0: the reads are served, and chunks past the last read were fetched ahead.
  for (uint64_t at = 0; at < 4 * kSourceChunk; at += buf.size()) {
    auto n = src.ReadAt(at, buf);
    REQUIRE(n.ok());
    REQUIRE(std::equal(buf.begin(), buf.end(), blob.begin() + at));
  }
  src.WaitForPrefetches();
  const uint64_t fetched = counting->bytes;
  CHECK(fetched > 8 * kSourceChunk);    // read 4 chunks, fetched ahead of them
  CHECK(fetched <= 14 * kSourceChunk);  // but within the largest window
  const int reads = counting->reads;
  for (uint64_t at = 4 * kSourceChunk; at < 6 * kSourceChunk; at += buf.size()) REQUIRE(src.ReadAt(at, buf).ok());
  src.WaitForPrefetches();
  CHECK(counting->reads >= reads);  // (read-ahead may continue; the reads were hits or joined flights)
}

TEST_CASE("cached source Prefetch fetches in the background, and reads of it fetch nothing again") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(6 * kSourceChunk + 77);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, Options(3, 4));
  src.Prefetch(kSourceChunk + 1, 100 * kSourceChunk);  // clamped to the blob: chunks 1..6
  src.WaitForPrefetches();
  CHECK(counting->bytes == blob.size() - kSourceChunk);
  CHECK(counting->reads == 2);  // runs of at most 4 chunks
  std::vector<uint8_t> buf(blob.size() - kSourceChunk);
  auto n = src.ReadAt(kSourceChunk, buf);
  REQUIRE(n.ok());
  CHECK(std::equal(buf.begin(), buf.end(), blob.begin() + kSourceChunk));
  CHECK(counting->reads == 2);
}

// Records the (offset, length) of every read that reaches it.
class RecordingSource final : public ByteSource {
 public:
  explicit RecordingSource(ByteSourcePtr inner) : inner_(std::move(inner)) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    {
      std::lock_guard lock(mu);
      reads.emplace_back(offset, buf.size());
    }
    return inner_->ReadAt(offset, buf);
  }
  // Records the stream, then streams through ReadAt (recorded too); with fail_stream_after > 0
  // the stream fails (kUnavailable) once that many pieces were handed.
  Status ReadStream(uint64_t offset, uint64_t length, const StreamConsumer& consume) const override {
    {
      std::lock_guard lock(mu);
      streams.emplace_back(offset, length);
    }
    int pieces = 0;
    Status st = ByteSource::ReadStream(offset, length, [&](uint64_t at, std::span<const uint8_t> bytes) {
      return consume(at, bytes) && (fail_stream_after == 0 || ++pieces < fail_stream_after);
    });
    if (fail_stream_after > 0 && pieces >= fail_stream_after) return Unavailable("stream cut by the test");
    return st;
  }
  std::string Describe() const override { return "recorded " + inner_->Describe(); }
  int fail_stream_after = 0;
  mutable std::mutex mu;
  mutable std::vector<std::pair<uint64_t, uint64_t>> reads;    // guarded by mu
  mutable std::vector<std::pair<uint64_t, uint64_t>> streams;  // guarded by mu

 private:
  ByteSourcePtr inner_;
};

TEST_CASE("cached source: a stream's long hint is fetched in requests of differing lengths that cover it once") {
  // Equal requests sharing a link finish together, and the link idles a round trip before
  // their successors' first bytes: the lengths go 3/4, 1, 5/4 of the run in turn.
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(200 * kSourceChunk);
  auto recording = std::make_shared<RecordingSource>(std::make_shared<MemorySource>(blob));
  FetchPolicy ranged = Options(1, 2);
  ranged.stream_passes = false;  // the requests a stream falls back to (stream_passes: see below)
  CachedSource src(recording, OpenSourceCache(tmp.path()), kKey, ranged);
  src.Prefetch(0, 192 * kSourceChunk);  // a stream's hint: runs of half of it (96 chunks)
  src.WaitForPrefetches();
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  {
    std::lock_guard lock(recording->mu);
    reads = recording->reads;
  }
  std::sort(reads.begin(), reads.end());
  uint64_t at = 0;
  std::set<uint64_t> lengths;
  for (const auto& [offset, length] : reads) {
    CHECK(offset == at);  // no gap, no overlap
    at = offset + length;
    lengths.insert(length / kSourceChunk);
  }
  CHECK(at == 192 * kSourceChunk);
  CHECK(lengths == std::set<uint64_t>{72, 96, 24});  // 72 + 96, then the 24 chunks left
  // A short hint is not a stream's: runs of max_run_chunks, all equal.
  TempDir tmp2;
  auto recording2 = std::make_shared<RecordingSource>(std::make_shared<MemorySource>(blob));
  CachedSource src2(recording2, OpenSourceCache(tmp2.path()), kKey, Options(1, 2));
  src2.Prefetch(0, 4 * kSourceChunk);
  src2.WaitForPrefetches();
  std::lock_guard lock(recording2->mu);
  CHECK(recording2->reads.size() == 2);
  for (const auto& [offset, length] : recording2->reads) CHECK(length == 2 * kSourceChunk);
}

namespace {
// Waits (up to 20 s) until `cache` holds at least n chunks of kKey.
void WaitForStored(const ChunkCache& cache, size_t n) {
  for (int i = 0; i < 2000 && Stored(cache).size() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}
}  // namespace

TEST_CASE("cached source: a stream's long hint starts one stream of the blob to its end, paced by the hints") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(200 * kSourceChunk);
  auto recording = std::make_shared<RecordingSource>(std::make_shared<MemorySource>(blob));
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(recording, cache, kKey, Options(1, 2));
  // A hint of 3 MiB: the stream takes its pieces (1 MiB, ByteSource::kStreamPiece) up to
  // there, then waits for the next hint.
  src.Prefetch(0, 48 * kSourceChunk);
  WaitForStored(*cache, 48);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::set<uint64_t> paused = Stored(*cache);
  CHECK(paused.size() == 48);
  CHECK(*paused.rbegin() == 47);
  // A hint past its limit is another reader's: fetched on its own, now.
  src.Prefetch(100 * kSourceChunk, 2 * kSourceChunk);
  WaitForStored(*cache, 50);
  CHECK(Stored(*cache).count(101) == 1);
  // A hint that continues it, however short (a pass's last one), lets it go on ...
  src.Prefetch(48 * kSourceChunk, 4 * kSourceChunk);
  WaitForStored(*cache, 54);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(Stored(*cache).size() == 54);  // to that hint's end exactly
  // ... to the blob's end (skipping the chunks fetched meanwhile).
  src.Prefetch(52 * kSourceChunk, 200 * kSourceChunk);
  src.WaitForPrefetches();
  CHECK(Stored(*cache).size() == 200);
  {
    std::lock_guard lock(recording->mu);
    CHECK(recording->streams == std::vector<std::pair<uint64_t, uint64_t>>{{0, blob.size()}});
  }
  std::vector<uint8_t> out(blob.size());
  REQUIRE(src.ReadAt(0, out).ok());
  CHECK(out == blob);
  CHECK(cache->stats().fetched_bytes == blob.size());
}

TEST_CASE("cached source: a stream paced to a limit inside a chunk completes that chunk and claims no further") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(200 * kSourceChunk);
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(std::make_shared<MemorySource>(blob), cache, kKey, Options(1, 2));
  src.Prefetch(0, 40 * kSourceChunk + 1000);
  WaitForStored(*cache, 41);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(Stored(*cache).size() == 41);  // chunk 40 whole: no reader of it waits for the next hint
  CHECK_FALSE(cache->StoredOrInFlight(kKey, 41));
}

TEST_CASE("cached source: read-ahead leaves the bytes a stream is about to bring to it") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(400 * kSourceChunk);
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(std::make_shared<MemorySource>(blob), cache, kKey, Options(2, 2));
  src.Prefetch(0, 48 * kSourceChunk);  // the stream, paused at 3 MiB
  WaitForStored(*cache, 48);
  // A sequential reader behind it: its read-ahead windows (past 3 MiB) are the stream's to fetch.
  std::vector<uint8_t> piece(4 * kSourceChunk);
  for (uint64_t at = 0; at < 48 * kSourceChunk; at += piece.size()) REQUIRE(src.ReadAt(at, piece).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(Stored(*cache).size() == 48);
}

TEST_CASE("cached source: a paused stream ends when its source is destroyed") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(200 * kSourceChunk);
  auto cache = OpenSourceCache(tmp.path());
  auto started = std::chrono::steady_clock::now();
  {
    CachedSource src(std::make_shared<MemorySource>(blob), cache, kKey, Options(1, 2));
    src.Prefetch(0, 16 * kSourceChunk);
    WaitForStored(*cache, 16);
  }
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
  CHECK(Stored(*cache).size() < 200);
}

TEST_CASE("cached source: after a stream of the blob fails, its hints are fetched in ranges") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(64 * kSourceChunk);
  auto recording = std::make_shared<RecordingSource>(std::make_shared<MemorySource>(blob));
  recording->fail_stream_after = 1;  // one piece (16 chunks), then the stream fails
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(recording, cache, kKey, Options(1, 2));
  src.Prefetch(0, 64 * kSourceChunk);
  src.WaitForPrefetches();
  CHECK(Stored(*cache).size() == 16);
  src.Prefetch(0, 64 * kSourceChunk);
  src.WaitForPrefetches();
  CHECK(Stored(*cache).size() == 64);
  std::lock_guard lock(recording->mu);
  CHECK(recording->streams.size() == 1);
  std::vector<uint8_t> out(blob.size());
  REQUIRE(src.ReadAt(0, out).ok());
  CHECK(out == blob);
}

TEST_CASE("cached source with prefetch_all fetches the whole blob in idle time") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(9 * kSourceChunk + 3);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto cache = OpenSourceCache(tmp.path());
  {
    CachedSource src(counting, cache, kKey, Options(3, 4, true, 2));
    std::vector<uint8_t> buf(100);
    REQUIRE(src.ReadAt(5 * kSourceChunk, buf).ok());
    src.WaitForPrefetches();
    CHECK(counting->bytes == blob.size());  // every chunk once
  }
  counting->fail = true;  // all on disk now
  CachedSource again(counting, cache, kKey, Options(0));
  std::vector<uint8_t> all(blob.size());
  REQUIRE(again.ReadAt(0, all).ok());
  CHECK(all == blob);
}

TEST_CASE("cached source paces prefetch_all to its rate cap") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(8 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  FetchPolicy o = Options(2, 4, true, 2);
  o.prefetch_all_rate = 2 * kSourceChunk * 10;  // 10 steps of 2 chunks a second: 100 ms a step
  const auto start = std::chrono::steady_clock::now();
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, o);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  CHECK(counting->bytes <= 4 * kSourceChunk);  // 2 steps by now, not 4
  src.WaitForPrefetches();
  CHECK(counting->bytes == blob.size());
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));  // 4 steps, 3 pauses
}

TEST_CASE("cached source stops its background fetches when destroyed") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(32 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  {
    CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, Options(3, 4, true, 1));
    src.Prefetch(0, 32 * kSourceChunk);
  }  // joins; nothing runs after this
  const uint64_t bytes = counting->bytes;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(counting->bytes == bytes);
}

TEST_CASE("cached source fetches a profile's chunks ahead, in runs, and reads of them fetch nothing again") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(10 * kSourceChunk + 5);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto profile = std::make_shared<AccessProfile>();
  profile->chunk_size = kSourceChunk;
  profile->blobs[kKey] = {6, 7, 2, 10, 99};  // 99: past the end, skipped
  profile->blobs[Digest('b')] = {0, 1};      // another blob's: not this source's business
  FetchPolicy o = Options(0);
  o.profile = profile;
  o.profile_threads = 2;
  o.profile_run_chunks = 2;
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, o);
  src.WaitForProfile();
  CHECK(counting->reads == 3);  // 6-7, 2, 10
  CHECK(counting->bytes == 3 * kSourceChunk + 5);
  for (uint64_t index : {2, 6, 7, 10}) {
    std::vector<uint8_t> buf(index == 10 ? 5 : kSourceChunk);
    REQUIRE(src.ReadAt(index * kSourceChunk, buf).ok());
    CHECK(std::equal(buf.begin(), buf.end(), blob.begin() + static_cast<long>(index * kSourceChunk)));
  }
  CHECK(counting->reads == 3);
}

TEST_CASE("cached source starts a profile given after construction, only the first one naming it") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(8 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, Options(0));
  AccessProfile other;  // names another blob only: not started, and does not use up the one start
  other.chunk_size = kSourceChunk;
  other.blobs[Digest('b')] = {0};
  CHECK_FALSE(src.StartProfile(other));
  AccessProfile profile;
  profile.chunk_size = kSourceChunk;
  profile.blobs[kKey] = {5, 1};
  CHECK(src.StartProfile(profile));
  AccessProfile later = profile;
  later.blobs[kKey] = {0, 2, 3};
  CHECK_FALSE(src.StartProfile(later));  // the first profile stands
  src.WaitForProfile();
  CHECK(counting->reads == 2);
  CHECK(counting->bytes == 2 * kSourceChunk);
}

TEST_CASE("cached source fetches a profile of other chunk sizes as its own chunks") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(8 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  auto profile = std::make_shared<AccessProfile>();
  profile->chunk_size = kSourceChunk / 4;  // finer: units 9 and 10 are both in chunk 2, 28 in chunk 7
  profile->blobs[kKey] = {9, 28, 10};
  FetchPolicy o = Options(0);
  o.profile = profile;
  o.profile_run_chunks = 1;
  o.profile_piece_threads = 0;  // no pieces (profile_pieces_test.cc): the chunks that hold the units
  auto cache = OpenSourceCache(tmp.path());
  {
    CachedSource src(counting, cache, kKey, o);
    src.WaitForProfile();
  }
  CHECK(counting->reads == 2);
  CHECK(counting->bytes == 2 * kSourceChunk);
  CHECK(Stored(*cache) == std::set<uint64_t>{2, 7});

  TempDir tmp2;
  profile->chunk_size = kSourceChunk * 2;  // coarser: chunk 1 is chunks 2 and 3
  profile->blobs[kKey] = {1};
  auto cache2 = OpenSourceCache(tmp2.path());
  CachedSource src(counting, cache2, kKey, o);
  src.WaitForProfile();
  CHECK(counting->reads == 4);
  CHECK(Stored(*cache2) == std::set<uint64_t>{2, 3});
}

TEST_CASE("cached source with a miss group fetches a missed read's whole group with one range") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(10 * kSourceChunk + 99);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  FetchPolicy o = Options(2, 4);
  o.readahead.max = 0;
  o.miss_group_bytes = 4 * kSourceChunk;
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(counting, cache, kKey, o);
  std::vector<uint8_t> buf(kSourceChunk);
  REQUIRE(src.ReadAt(5 * kSourceChunk + 7, buf).ok());  // chunks 5 and 6 of the group 4..7
  CHECK(std::equal(buf.begin(), buf.end(), blob.begin() + 5 * kSourceChunk + 7));
  CHECK(Stored(*cache) == std::set<uint64_t>{4, 5, 6, 7});  // before the read returned
  CHECK(counting->reads == 1);
  // A hit queues nothing; the last group is cut at the blob's end.
  const int reads = counting->reads;
  REQUIRE(src.ReadAt(4 * kSourceChunk, buf).ok());
  src.WaitForPrefetches();
  CHECK(counting->reads == reads);
  REQUIRE(src.ReadAt(10 * kSourceChunk, std::span<uint8_t>(buf).first(99)).ok());
  src.WaitForPrefetches();
  CHECK(Stored(*cache) == std::set<uint64_t>{4, 5, 6, 7, 8, 9, 10});
  CHECK(counting->bytes == 6 * kSourceChunk + 99);  // no chunk twice (10 is the 99-byte tail)
}

TEST_CASE("cached source with a miss group and exact small misses reads its bytes and brings the group") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(8 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  FetchPolicy o = Options(2, 4);
  o.readahead.max = 0;
  o.exact_small_misses = true;
  o.miss_group_bytes = 4 * kSourceChunk;
  auto cache = OpenSourceCache(tmp.path());
  CachedSource src(counting, cache, kKey, o);
  std::vector<uint8_t> buf(100);
  REQUIRE(src.ReadAt(kSourceChunk + 50, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), blob.begin() + kSourceChunk + 50));
  src.WaitForPrefetches();
  CHECK(Stored(*cache) == std::set<uint64_t>{0, 1, 2, 3});
  CHECK(counting->bytes == 4 * kSourceChunk + 100);
  CHECK(counting->reads == 2);  // its bytes, and the group with one range
}

TEST_CASE("cached source records the chunks its reads touch, not its read-ahead") {
  TempDir tmp;
  const std::vector<uint8_t> blob = Blob(40 * kSourceChunk);
  auto counting = std::make_shared<CountingSource>(std::make_shared<MemorySource>(blob), "layer " + kKey);
  FetchPolicy o = Options(3, 4);
  o.readahead = {.initial = kSourceChunk, .max = 8 * kSourceChunk, .min_run = 2 * kSourceChunk, .min_reads = 2};
  o.recorder = std::make_shared<AccessRecorder>(kSourceChunk);
  CachedSource src(counting, OpenSourceCache(tmp.path()), kKey, o);
  std::vector<uint8_t> buf(kSourceChunk / 2);
  for (uint64_t off = 20 * kSourceChunk; off < 24 * kSourceChunk; off += buf.size()) REQUIRE(src.ReadAt(off, buf).ok());
  std::vector<uint8_t> two(kSourceChunk);
  REQUIRE(src.ReadAt(3 * kSourceChunk + 10, two).ok());  // spans chunks 3 and 4
  src.WaitForPrefetches();
  CHECK(counting->bytes > 6 * kSourceChunk);  // read-ahead fetched beyond chunk 23 ...
  auto profile = o.recorder->Snapshot();
  CHECK(profile.ChunksOf(kKey) == std::vector<uint64_t>{20, 21, 22, 23, 3, 4});  // ... but only reads count
}
