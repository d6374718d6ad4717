#include "cache/access_profile.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "cache/cache_test_util.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("access recorder keeps each blob's units in first-read order, once each") {
  constexpr uint64_t kUnit = 1 << 20;
  AccessRecorder rec(kUnit);
  rec.Touch(kKey, 7 * kUnit + 5, 3 * kUnit - 5);  // units 7..9
  rec.Touch(Digest('b'), 0, 1);
  rec.Touch(kKey, 9 * kUnit - 1, 3 * kUnit + 2);  // 8..12: 8, 9 again, not repeated
  rec.Touch(kKey, 3 * kUnit, kUnit);               // exactly unit 3
  rec.Touch(kKey, 20 * kUnit, 0);                  // nothing read: nothing recorded
  AccessProfile p = rec.Snapshot();
  CHECK(p.chunk_size == kUnit);
  CHECK(p.ChunksOf(kKey) == std::vector<uint64_t>{7, 8, 9, 10, 11, 12, 3});
  CHECK(p.ChunksOf(Digest('b')) == std::vector<uint64_t>{0});
  CHECK(p.ChunksOf(Digest('c')).empty());
  CHECK(p.ChunkCount() == 8);
}

TEST_CASE("access recorder forgets an excluded blob and ignores its later reads") {
  AccessRecorder rec(4096, /*max_units=*/10);
  rec.Touch(kKey, 0, 6 * 4096);
  rec.Exclude(kKey);
  rec.Touch(kKey, 6 * 4096, 1);
  rec.Touch(Digest('b'), 0, 21 * 4096);  // the bound counts only what is kept: 10 units
  AccessProfile p = rec.Snapshot();
  CHECK(p.blobs.size() == 1);
  CHECK(p.ChunksOf(Digest('b')).size() == 10);
}

TEST_CASE("access recorder is safe under concurrent touches") {
  AccessRecorder rec(4096);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&rec, t] {
      for (uint64_t i = 0; i < 1000; ++i) rec.Touch(kKey, i * 4096, (static_cast<uint64_t>(t) + 1) * 4096);
    });
  }
  for (auto& t : threads) t.join();
  auto chunks = rec.Snapshot().ChunksOf(kKey);
  std::sort(chunks.begin(), chunks.end());
  REQUIRE(chunks.size() == 1003);
  CHECK(chunks.back() == 1002);
}

TEST_CASE("a profile's chunks convert to larger chunks (merged, first read first) and smaller (split)") {
  AccessProfile p;
  p.chunk_size = 64 << 10;
  p.blobs[kKey] = {17, 3, 16, 2, 40, 70};
  CHECK(p.ChunksOf(kKey, 64 << 10, 100) == p.ChunksOf(kKey));
  uint64_t past = 99;
  // 1 MiB chunks: 17 and 16 -> 1, 3 and 2 -> 0, 40 -> 2, 70 -> 4; 5 chunks in the blob.
  CHECK(p.ChunksOf(kKey, 1 << 20, 5, &past) == std::vector<uint64_t>{1, 0, 2, 4});
  CHECK(past == 0);
  CHECK(p.ChunksOf(kKey, 1 << 20, 3, &past) == std::vector<uint64_t>{1, 0, 2});
  CHECK(past == 1);  // 70
  // 16 KiB chunks: each in four, in order; the blob ends inside chunk 17's second quarter.
  AccessProfile q;
  q.chunk_size = 64 << 10;
  q.blobs[kKey] = {17, 2, 30};
  CHECK(q.ChunksOf(kKey, 16 << 10, 70, &past) == std::vector<uint64_t>{68, 69, 8, 9, 10, 11});
  CHECK(past == 1);  // 30
  CHECK(q.ChunksOf(Digest('c'), 16 << 10, 70).empty());
  // A huge profile chunk split into small ones is bounded by the blob, not by the ratio.
  AccessProfile huge;
  huge.chunk_size = 1u << 30;
  huge.blobs[kKey] = {0, 1ull << 40, 1};
  CHECK(huge.ChunksOf(kKey, 64 << 10, 4, &past) == std::vector<uint64_t>{0, 1, 2, 3});
  CHECK(past == 2);
}

TEST_CASE("access profiles round-trip through their file, with runs written as ranges") {
  TempDir tmp;
  AccessProfile p;
  p.chunk_size = 1 << 20;
  p.blobs[kKey] = {5, 6, 7, 8, 2, 40, 41, 0};
  p.blobs[Digest('b')] = {3};
  const std::string path = tmp.path() + "/boot.profile";
  REQUIRE(SaveAccessProfile(path, p).ok());
  const std::string text = ReadFile(path);
  CHECK(text.find("\n5-8\n2\n40-41\n0\n") != std::string::npos);
  auto loaded = LoadAccessProfile(path);
  REQUIRE(loaded.ok());
  CHECK(loaded->chunk_size == p.chunk_size);
  CHECK(loaded->blobs == p.blobs);
}

TEST_CASE("malformed access profiles are refused, naming the line and what is wrong") {
  TempDir tmp;
  const std::string path = tmp.path() + "/p";
  const std::string head = "oci-fs-profile 1\nchunk-size 1048576\n";
  struct Case {
    std::string text, error;
  };
  const Case cases[] = {
      {"", "is empty"},
      {"hello\n", "line 1: not an oci-fs profile"},
      {"oci-fs-profile 1\nchunk-size 1000\n", "line 2: chunk-size must be a power of two"},
      {head + "blob sha256:xyz 1\n0\n", "line 3: blob key \"sha256:xyz\" is not a digest"},
      {head + "3\n", "line 3: chunk range before any \"blob\" line"},
      {head + "blob " + kKey + " 3\n0-1\n", "declares 3 chunks but lists 2 (truncated?)"},
      {head + "blob " + kKey + " 2\n0-5\n", "line 4: more chunks than blob"},
      {head + "blob " + kKey + " 2\n9-3\n", "line 4: \"9-3\" is not a chunk or a range"},
      {head + "blob " + kKey + " 1\nx\n", "\"x\" is not a chunk"},
      {"oci-fs-profile 1\nblob " + kKey + " 1\n0\n", "chunk range before \"chunk-size\""},
      {head + "blob " + kKey + " 99999999999\n", "bad chunk count"},
      {head + "blob " + kKey + " 3\n0-18446744073709551615\n", "line 4: more chunks than blob"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    WriteFile(path, c.text);
    auto loaded = LoadAccessProfile(path);
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.status().code() == Code::kCorrupt);
    CHECK_THAT(loaded.status().ToString(), Catch::Contains(c.error));
  }
  // The last chunk index there is: one chunk, not a loop that wraps.
  WriteFile(path, head + "blob " + kKey + " 2\n18446744073709551614-18446744073709551615\n");
  auto edge = LoadAccessProfile(path);
  REQUIRE(edge.ok());
  CHECK(edge->ChunksOf(kKey) == std::vector<uint64_t>{18446744073709551614ull, 18446744073709551615ull});
  auto missing = LoadAccessProfile(tmp.path() + "/none");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
}

TEST_CASE("a recorder takes a blob's needed bytes from its decoder once it reports them, not its raw reads") {
  AccessRecorder recorder(65536);
  recorder.Touch("sha256:a", 0, 100);            // before the decoder's reports: kept
  recorder.TouchNeeded("sha256:a", 0, 0);         // the reports start
  recorder.Touch("sha256:a", 10 << 20, 1 << 20);  // a whole span the decoder inflated: ignored
  recorder.TouchNeeded("sha256:a", 5 * 65536 + 10, 100);
  recorder.Touch("sha256:b", 65536, 1);           // another blob still records its reads
  AccessProfile profile = recorder.Snapshot();
  CHECK(profile.ChunksOf("sha256:a") == std::vector<uint64_t>{0, 5});
  CHECK(profile.ChunksOf("sha256:b") == std::vector<uint64_t>{1});
}

TEST_CASE("a recorder's default unit is 4 KiB: a small read is named to 4 KiB, not to 64 KiB") {
  AccessRecorder rec;
  rec.Touch(kKey, 5 * 4096 + 100, 200);       // inside unit 5
  rec.TouchNeeded(Digest('b'), 65536 + 4000, 200);  // across units 16 and 17
  AccessProfile p = rec.Snapshot();
  CHECK(p.chunk_size == 4096);
  CHECK(p.ChunksOf(kKey) == std::vector<uint64_t>{5});
  CHECK(p.ChunksOf(Digest('b')) == std::vector<uint64_t>{16, 17});
}
