#include "decode/gzip_index.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "testing/gzip_index_v1.h"

using namespace ocifs;

namespace {
GzipIndex SampleIndex() {
  GzipIndex index;
  index.compressed_size = 1000;
  index.decompressed_size = 5000;
  index.spacing = 1024;
  index.tail = {1, 2, 3, 4, 5, 6, 7, 8};
  index.checkpoints.push_back(GzipCheckpoint{.out = 0, .member_start = true});
  std::vector<uint8_t> window(GzipCheckpoint::kWindowSize);
  std::mt19937 rng(7);
  for (auto& b : window) b = static_cast<uint8_t>(rng() % 4);
  GzipCheckpoint cp{.out = 2000, .in = 400, .bits = 3, .window_size = static_cast<uint32_t>(window.size()),
                    .zwindow = CompressWindow(window)};
  index.checkpoints.push_back(cp);
  index.checkpoints.push_back(GzipCheckpoint{.out = 4000, .member_start = true, .in = 800});
  return index;
}

// Each of `cps` reads its window from a file, and it inflates to `original`'s.
void RequireWindowsInFile(const std::vector<GzipCheckpoint>& cps, const GzipIndex& original) {
  REQUIRE(cps.size() == original.checkpoints.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    const GzipCheckpoint& cp = cps[i];
    CHECK(cp.zwindow.empty());
    CHECK((cp.window_file != nullptr) == (cp.window_size > 0));
    std::vector<uint8_t> got(cp.window_size), want(cp.window_size);
    REQUIRE(DecompressWindow(cp, got).ok());
    REQUIRE(DecompressWindow(original.checkpoints[i], want).ok());
    CHECK(got == want);
  }
}
}  // namespace

TEST_CASE("gzip index v2 carries the layer's zero runs; a version 1 file is read without them") {
  GzipIndex index = SampleIndex();
  index.zero_runs = {{100, 1100}, {1196, 2000}, {4500, 5000}};
  const std::vector<uint8_t> bytes = *index.Serialize();
  auto parsed = GzipIndex::Parse(bytes, "v2");
  REQUIRE(parsed.ok());
  CHECK(parsed->zero_runs_known);
  CHECK(parsed->zero_runs == index.zero_runs);
  CHECK(parsed->checkpoints.size() == 3);
  auto none = SampleIndex();
  auto parsed_none = GzipIndex::Parse(*none.Serialize(), "v2, no runs");
  REQUIRE(parsed_none.ok());
  CHECK(parsed_none->zero_runs_known);  // known: there are none
  CHECK(parsed_none->zero_runs.empty());
  auto v1 = GzipIndex::Parse(ocifs::testing::AsGzipIndexVersion1(bytes, index.zero_runs.size()), "v1");
  REQUIRE(v1.ok());
  CHECK_FALSE(v1->zero_runs_known);
  CHECK(v1->zero_runs.empty());
  CHECK(v1->checkpoints.size() == 3);
  CHECK(v1->checkpoints[1].zwindow == index.checkpoints[1].zwindow);
}

TEST_CASE("gzip index zero runs that overlap, are empty or pass the layer's end are corrupt") {
  const std::vector<std::vector<std::pair<uint64_t, uint64_t>>> bad_runs = {
      {{100, 300}, {200, 400}},  // overlap
      {{300, 400}, {100, 200}},  // out of order
      {{100, 100}},              // empty
      {{4000, 5001}},            // past decompressed_size (5000)
      {{6000, 7000}},
  };
  for (const auto& runs : bad_runs) {
    GzipIndex index = SampleIndex();
    index.zero_runs = runs;
    auto parsed = GzipIndex::Parse(*index.Serialize(), "bad runs");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == Code::kCorrupt);
    CHECK(parsed.status().message().find("zero run") != std::string::npos);
  }
}

TEST_CASE("gzip index serializes and parses back to the same checkpoints") {
  GzipIndex index = SampleIndex();
  auto parsed = GzipIndex::Parse(*index.Serialize(), "test");
  REQUIRE(parsed.ok());
  CHECK(parsed->compressed_size == 1000);
  CHECK(parsed->decompressed_size == 5000);
  CHECK(parsed->tail == index.tail);
  REQUIRE(parsed->checkpoints.size() == 3);
  CHECK(parsed->checkpoints[1].out == 2000);
  CHECK(parsed->checkpoints[1].in == 400);
  CHECK(parsed->checkpoints[1].bits == 3);
  CHECK(!parsed->checkpoints[1].member_start);
  CHECK(parsed->checkpoints[1].zwindow == index.checkpoints[1].zwindow);
  CHECK(parsed->checkpoints[2].member_start);
  std::vector<uint8_t> window(GzipCheckpoint::kWindowSize);
  REQUIRE(DecompressWindow(parsed->checkpoints[1], window).ok());
}

TEST_CASE("gzip index keeps a 32 KiB window in far less space when it compresses") {
  GzipIndex index = SampleIndex();
  CHECK(index.checkpoints[1].zwindow.size() < GzipCheckpoint::kWindowSize / 2);
}

TEST_CASE("gzip index rejects every flipped byte and every truncation as corrupt") {
  std::vector<uint8_t> bytes = *SampleIndex().Serialize();
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::vector<uint8_t> bad = bytes;
    bad[i] ^= 0x40;
    auto parsed = GzipIndex::Parse(bad, "flipped");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == Code::kCorrupt);
  }
  for (size_t n : {size_t{0}, size_t{10}, size_t{71}, bytes.size() / 2, bytes.size() - 1}) {
    auto parsed = GzipIndex::Parse(std::span(bytes).first(n), "truncated");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == Code::kCorrupt);
  }
}

TEST_CASE("gzip index with a valid checksum but out-of-order checkpoints is corrupt") {
  GzipIndex index = SampleIndex();
  std::swap(index.checkpoints[1].out, index.checkpoints[2].out);
  auto parsed = GzipIndex::Parse(*index.Serialize(), "unordered");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("out of order") != std::string::npos);
}

TEST_CASE("gzip index saves atomically and loads; a missing file is not found") {
  auto dir = std::filesystem::temp_directory_path() / ("ocifs-gzi-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "layer.gzi").string();
  auto missing = GzipIndex::Load(path);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  REQUIRE(SampleIndex().Save(path).ok());
  auto loaded = GzipIndex::Load(path);
  REQUIRE(loaded.ok());
  CHECK(loaded->checkpoints.size() == 3);
  // Windows stay in the file: read back on use, and the index serializes to the same bytes.
  const GzipIndex original = SampleIndex();
  RequireWindowsInFile(loaded->checkpoints, original);
  CHECK(*loaded->Serialize() == *original.Serialize());
  // A file cut short under a loaded index: the window read fails cleanly.
  std::filesystem::resize_file(path, 80);
  for (const GzipCheckpoint& cp : loaded->checkpoints) {
    if (cp.window_size == 0) continue;
    std::vector<uint8_t> got(cp.window_size);
    Status st = DecompressWindow(cp, got);
    CHECK(st.code() == Code::kCorrupt);
  }
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++files;
  CHECK(files == 1);  // no temp file left behind
  std::filesystem::remove_all(dir);
}

TEST_CASE("gzip index saved with the windows' places serves them from the written file") {
  auto dir = std::filesystem::temp_directory_path() / ("ocifs-gzp-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "layer.gzi").string();
  const GzipIndex original = SampleIndex();
  GzipIndex index = SampleIndex();
  auto saved = index.SaveWithPlaces(path, index.checkpoints);
  REQUIRE(saved.ok());
  REQUIRE(saved->places.size() == 3);
  CHECK(saved->places[0].length == 0);  // a member start has no window
  CHECK(saved->places[1].length == original.checkpoints[1].zwindow.size());
  saved->ApplyTo(index.checkpoints);
  // The path is replaced (another process saving the same blob's index): the
  // windows still come from the file this index wrote.
  std::filesystem::rename(path, path + ".old");
  REQUIRE(SampleIndex().Save(path + ".other").ok());
  std::filesystem::rename(path + ".other", path);
  RequireWindowsInFile(index.checkpoints, original);
  // What it wrote is a valid index, the same as Save's.
  auto loaded = GzipIndex::Load(path + ".old");
  REQUIRE(loaded.ok());
  CHECK(*loaded->Serialize() == *original.Serialize());
  std::filesystem::remove_all(dir);
}

TEST_CASE("a compressed window takes the memory of its compressed size, not of the bound") {
  // A pass over a raw disk holds thousands of windows of zeros until its index is saved.
  const std::vector<uint8_t> zeros(GzipCheckpoint::kWindowSize, 0);
  std::vector<uint8_t> z = CompressWindow(zeros);
  CHECK(z.size() < 200);
  CHECK(z.capacity() < 1024);
}
