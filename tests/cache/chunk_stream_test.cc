// ChunkStream (ChunkCache::StreamChunks): a run of chunks fetched by one
// stream, each stored as its bytes complete, chunks someone else has skipped,
// and a failed stream's claimed chunks handed back to their readers.
#include "cache/chunk_stream.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <latch>
#include <thread>

#include "cache/chunk_cache_rig.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// The bytes of chunks [first, first + count) of Pattern chunks (the last `last_length` long).
std::vector<uint8_t> PatternRun(uint64_t first, uint64_t count, size_t last_length = kTestChunkSize) {
  std::vector<uint8_t> v;
  for (uint64_t i = first; i < first + count; ++i) {
    auto p = Pattern(i, i + 1 == first + count ? last_length : kTestChunkSize);
    v.insert(v.end(), p.begin(), p.end());
  }
  return v;
}

// A StreamFn over Pattern chunks that hands `piece` bytes at a time and records each stream.
struct PatternStream {
  size_t piece = 10000;
  size_t last_length = kTestChunkSize;
  uint64_t total_chunks = 0;
  std::vector<std::pair<uint64_t, uint64_t>> streams;  // (first index, bytes)
  std::function<void(uint64_t at)> before_piece;        // called before each piece (may block)
  Status operator()(uint64_t first_index, uint64_t bytes, const ChunkCache::StreamConsumer& consume) {
    streams.emplace_back(first_index, bytes);
    const auto all = PatternRun(first_index, total_chunks - first_index, last_length);
    REQUIRE(bytes == all.size());
    for (uint64_t at = 0; at < bytes; at += piece) {
      if (before_piece) before_piece(at);
      const size_t n = static_cast<size_t>(std::min<uint64_t>(piece, bytes - at));
      if (!consume(at, std::span(all).subspan(at, n))) return Cancelled("stopped");
    }
    return Status::Ok();
  }
};

std::vector<size_t> Lengths(uint64_t count, size_t last_length = kTestChunkSize) {
  std::vector<size_t> v(count, kTestChunkSize);
  v.back() = last_length;
  return v;
}

}  // namespace

TEST_CASE("chunk stream fetches a run of chunks with one stream, storing each as its bytes complete") {
  TempDir tmp;
  auto cache = OpenTestCache(tmp.path());
  PatternStream stream;
  stream.last_length = 1234;
  stream.total_chunks = 20;
  std::vector<bool> stored_before(20);
  // Before each piece: which chunks are already readable (a chunk is stored before the stream ends).
  stream.before_piece = [&](uint64_t at) {
    if (at >= 12 * kTestChunkSize && !stored_before[5]) stored_before[5] = HasChunk(*cache, kKey, 5);
  };
  auto stored = cache->StreamChunks(kKey, 0, Lengths(20, 1234), 4, std::ref(stream));
  REQUIRE(stored.ok());
  CHECK(*stored == 20);
  CHECK(stream.streams == std::vector<std::pair<uint64_t, uint64_t>>{{0, 19 * kTestChunkSize + 1234}});
  CHECK(stored_before[5]);
  for (uint64_t i = 0; i < 19; ++i) CHECK(HasChunk(*cache, kKey, i));
  CHECK(HasChunk(*cache, kKey, 19, 1234));
  CHECK(cache->stats().fetched_bytes == 19 * kTestChunkSize + 1234);
  CHECK(cache->stats().misses == 0);
}

TEST_CASE("chunk stream skips chunks on disk, and stops and starts again past a run of them") {
  TempDir tmp;
  auto cache = OpenTestCache(tmp.path());
  std::atomic<int> calls{0};
  // Chunk 2 alone, and chunks 8..15 (more than claim_ahead = 4 in a row), are on disk already.
  std::vector<uint8_t> out(kTestChunkSize);
  for (uint64_t i : {2, 8, 9, 10, 11, 12, 13, 14, 15}) REQUIRE(cache->Read(kKey, i, out, CountingFetch{i, &calls}).ok());
  PatternStream stream;
  stream.piece = 3000;
  stream.total_chunks = 20;
  const uint64_t fetched_before = cache->stats().fetched_bytes;
  auto stored = cache->StreamChunks(kKey, 0, Lengths(20), 4, std::ref(stream));
  REQUIRE(stored.ok());
  CHECK(*stored == 20 - 9);
  // One stream from chunk 0 (chunk 2's bytes dropped), cut before chunk 8's run; the next at 16.
  REQUIRE(stream.streams.size() == 2);
  CHECK(stream.streams[0].first == 0);
  CHECK(stream.streams[1] == std::pair<uint64_t, uint64_t>{16, 4 * kTestChunkSize});
  for (uint64_t i = 0; i < 20; ++i) CHECK(HasChunk(*cache, kKey, i));
  CHECK(cache->stats().fetched_bytes - fetched_before == 11 * kTestChunkSize);
}

TEST_CASE("chunk stream: bytes handed again after a retry are not taken twice") {
  TempDir tmp;
  auto cache = OpenTestCache(tmp.path());
  const auto all = PatternRun(0, 3);
  auto stream = [&](uint64_t, uint64_t bytes, const ChunkCache::StreamConsumer& consume) {
    // 1.5 chunks, then the attempt starts over from the range's start (a retry).
    if (!consume(0, std::span(all).first(kTestChunkSize + kTestChunkSize / 2))) return Cancelled("stopped");
    for (uint64_t at = 0; at < bytes; at += 7000) {
      if (!consume(at, std::span(all).subspan(at, std::min<uint64_t>(7000, bytes - at)))) return Cancelled("stopped");
    }
    return Status::Ok();
  };
  auto stored = cache->StreamChunks(kKey, 0, Lengths(3), 8, stream);
  REQUIRE(stored.ok());
  CHECK(*stored == 3);
  for (uint64_t i = 0; i < 3; ++i) CHECK(HasChunk(*cache, kKey, i));
}

TEST_CASE("chunk stream that fails hands its claimed chunks' readers kUnavailable, and they fetch them") {
  TempDir tmp;
  auto cache = OpenTestCache(tmp.path());
  const auto all = PatternRun(0, 10);
  std::latch reader_waits(1);
  std::atomic<int> calls{0};
  Status reader_status;
  std::vector<uint8_t> reader_out(kTestChunkSize);
  std::thread reader;
  auto stream = [&](uint64_t, uint64_t, const ChunkCache::StreamConsumer& consume) {
    // Chunks 0..2 whole, then half of chunk 3; chunk 4 is claimed by then (claim_ahead 3).
    if (!consume(0, std::span(all).first(3 * kTestChunkSize + kTestChunkSize / 2))) return Cancelled("stopped");
    CHECK(cache->StoredOrInFlight(kKey, 4));
    reader = std::thread([&] {
      reader_waits.count_down();
      reader_status = cache->Read(kKey, 4, reader_out, CountingFetch{4, &calls});
    });
    reader_waits.wait();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the reader joins chunk 4's flight
    return Unavailable("connection reset by the test");
  };
  auto stored = cache->StreamChunks(kKey, 0, Lengths(10), 3, stream);
  reader.join();
  CHECK(stored.status().code() == Code::kUnavailable);
  CHECK_THAT(stored.status().message(), Catch::Contains("connection reset by the test"));
  for (uint64_t i = 0; i < 3; ++i) CHECK(HasChunk(*cache, kKey, i));
  CHECK_FALSE(HasChunk(*cache, kKey, 3));
  // The reader that waited for chunk 4 asked again and fetched it itself.
  CHECK(reader_status.ok());
  CHECK(reader_out == Pattern(4, kTestChunkSize));
  CHECK(calls == 1);
  for (uint64_t i = 3; i < 10; ++i) {
    if (i != 4) CHECK_FALSE(cache->StoredOrInFlight(kKey, i));
  }
}
