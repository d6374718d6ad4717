#include "decode/gzip_index.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "testing/gzip_index_v1.h"
#include "testing/temp_dir.h"

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

namespace {

// SampleIndex with version 3's checksums: 5000 bytes in blocks of 4 KiB.
GzipIndex SampleIndexV3() {
  GzipIndex index = SampleIndex();
  index.zero_runs = {{100, 1100}};
  index.block_size = 4096;
  index.block_crcs = {0x12345678, 0x9abcdef0};
  return index;
}

uint32_t At32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 | uint32_t{b[at + 3]} << 24;
}

// `bytes` with their CRC-32 trailer recomputed, so only the parser's other checks see a change.
std::vector<uint8_t> Rechecksummed(std::vector<uint8_t> bytes) {
  if (bytes.size() < 4) return bytes;
  const size_t body = bytes.size() - 4;
  const uint32_t crc = static_cast<uint32_t>(crc32(0, bytes.data(), static_cast<uInt>(body)));
  for (int i = 0; i < 4; ++i) bytes[body + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (8 * i));
  return bytes;
}

// The position of the checksum section (block size, count, CRCs) in a serialized SampleIndexV3.
size_t ChecksumSection(const std::vector<uint8_t>& bytes, size_t blocks) { return bytes.size() - 4 - 12 - 4 * blocks; }

}  // namespace

TEST_CASE("gzip index v3 carries block checksums of the decoded layer and round-trips") {
  const GzipIndex index = SampleIndexV3();
  const std::vector<uint8_t> bytes = *index.Serialize();
  CHECK(At32(bytes, 8) == 3);   // version
  CHECK(At32(bytes, 12) == 0);  // flags
  const size_t section = ChecksumSection(bytes, 2);
  CHECK(At32(bytes, section) == 4096);
  auto parsed = GzipIndex::Parse(bytes, "v3");
  REQUIRE(parsed.ok());
  CHECK(parsed->has_checksums());
  CHECK(parsed->block_size == 4096);
  CHECK(parsed->block_crcs == index.block_crcs);
  CHECK(parsed->zero_runs_known);
  CHECK(parsed->zero_runs == index.zero_runs);
  CHECK(parsed->checkpoints.size() == 3);
  CHECK(*parsed->Serialize() == bytes);
  // Saved and loaded (windows left in the file): the same bytes again.
  ocifs::testing::TempDir dir("ocifs-gzi3");
  REQUIRE(index.Save(dir / "i").ok());
  auto loaded = GzipIndex::Load(dir / "i");
  REQUIRE(loaded.ok());
  CHECK(loaded->block_crcs == index.block_crcs);
  CHECK(*loaded->Serialize() == bytes);
}

TEST_CASE("gzip index v3 with flag bit 0 gives no zero runs: they are to be learnt") {
  GzipIndex index = SampleIndexV3();
  index.zero_runs_known = false;  // the runs it still holds are not written
  const std::vector<uint8_t> bytes = *index.Serialize();
  CHECK(At32(bytes, 8) == 3);
  CHECK(At32(bytes, 12) == 1);
  auto parsed = GzipIndex::Parse(bytes, "flagged");
  REQUIRE(parsed.ok());
  CHECK_FALSE(parsed->zero_runs_known);
  CHECK(parsed->zero_runs.empty());
  CHECK(parsed->block_crcs == index.block_crcs);
  // Without checksums and runs it is version 1; without checksums, version 2.
  index.block_size = 0;
  index.block_crcs.clear();
  CHECK(At32(*index.Serialize(), 8) == 1);
  index.zero_runs_known = true;
  CHECK(At32(*index.Serialize(), 8) == 2);
}

TEST_CASE("gzip index v3 checksums that do not fit the decompressed size are refused on both sides") {
  GzipIndex index = SampleIndexV3();
  index.block_crcs.push_back(7);  // 3 for 5000 bytes in 4 KiB blocks
  CHECK(index.Serialize().status().code() == Code::kInvalidArgument);
  index = SampleIndexV3();
  index.block_size = 4097;
  CHECK(index.Serialize().status().code() == Code::kInvalidArgument);
  CHECK(GzipIndex::ValidBlockSize(4096));
  CHECK(GzipIndex::ValidBlockSize(16u << 20));
  CHECK_FALSE(GzipIndex::ValidBlockSize(2048));
  CHECK_FALSE(GzipIndex::ValidBlockSize(32u << 20));
  CHECK_FALSE(GzipIndex::ValidBlockSize(65535));

  // The file's fields changed by hand (its checksum recomputed).
  const std::vector<uint8_t> good = *SampleIndexV3().Serialize();
  const size_t section = ChecksumSection(good, 2);
  auto with32 = [&](size_t at, uint32_t v) {
    std::vector<uint8_t> b = good;
    for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
    return Rechecksummed(b);
  };
  struct Bad {
    std::vector<uint8_t> bytes;
    std::string why;
  };
  const std::vector<Bad> bad = {
      {with32(section, 2048), "block size"},
      {with32(section, 1u << 25), "block size"},
      {with32(section, 6000), "block size"},
      {with32(section, 0), "block size"},
      {with32(section, 8192), "block checksums for 5000"},  // 1 block of 8 KiB, not 2
      {with32(section + 4, 3), "block checksums for 5000"},
      {with32(section + 4, 1), "block checksums for 5000"},
      {with32(12, 2), "unknown flags"},
      {with32(12, 1), "zero runs given"},  // the flag with runs in the file
      {with32(8, 4), "unsupported version"},
      {with32(8, 2), "trailing bytes"},  // a version 2 file does not end with checksums
  };
  for (const Bad& b : bad) {
    auto parsed = GzipIndex::Parse(b.bytes, "hand-made");
    INFO(b.why);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == Code::kCorrupt);
    CHECK(parsed.status().message().find(b.why) != std::string::npos);
  }
  // Flags on a version 2 file.
  GzipIndex v2 = SampleIndex();
  std::vector<uint8_t> v2_bytes = *v2.Serialize();
  v2_bytes[12] = 1;
  auto parsed = GzipIndex::Parse(Rechecksummed(v2_bytes), "v2 flagged");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("unknown flags") != std::string::npos);
}

TEST_CASE("gzip index v3: every truncation fails cleanly, with or without a recomputed checksum") {
  const std::vector<uint8_t> bytes = *SampleIndexV3().Serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    for (const auto& candidate : {cut, Rechecksummed(cut)}) {
      auto parsed = GzipIndex::Parse(candidate, "truncated");
      INFO("length " << n);
      REQUIRE_FALSE(parsed.ok());
      REQUIRE(parsed.status().code() == Code::kCorrupt);
      REQUIRE(parsed.status().message().rfind("gzip index truncated", 0) == 0);
    }
  }
}

TEST_CASE("gzip index v3: random bit flips fail cleanly, or, with a recomputed checksum, load what the file says") {
  const std::vector<uint8_t> bytes = *SampleIndexV3().Serialize();
  std::mt19937 rng(17);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    std::vector<uint8_t> bad = bytes;
    const size_t bit = rng() % (bad.size() * 8);
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    INFO("bit " << bit);
    auto raw = GzipIndex::Parse(bad, "flipped");  // the file checksum catches every single flip
    REQUIRE_FALSE(raw.ok());
    REQUIRE(raw.status().code() == Code::kCorrupt);
    if (bit / 8 >= bad.size() - 4) continue;
    const std::vector<uint8_t> rechecked = Rechecksummed(bad);
    auto parsed = GzipIndex::Parse(rechecked, "flipped");
    if (parsed.ok()) {
      ++loaded;  // a field the parser cannot judge (a size, a checksum, a window's byte): read as written
      REQUIRE(*parsed->Serialize() == rechecked);
    } else {
      ++refused;
      REQUIRE(parsed.status().code() == Code::kCorrupt);
      REQUIRE(parsed.status().message().rfind("gzip index flipped", 0) == 0);
    }
  }
  CHECK(loaded > 0);
  CHECK(refused > 0);
}

TEST_CASE("gzip index parsed without window copies places each window in the bytes and still checks it") {
  const GzipIndex index = SampleIndex();
  const std::vector<uint8_t> bytes = *index.Serialize();
  auto parsed = GzipIndex::Parse(bytes, "placed", /*keep_windows=*/false);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->checkpoints.size() == 3);
  const GzipCheckpoint& cp = parsed->checkpoints[1];
  CHECK(cp.zwindow.empty());
  REQUIRE(cp.zwindow_length == index.checkpoints[1].zwindow.size());
  const auto placed = std::span(bytes).subspan(cp.zwindow_offset, cp.zwindow_length);
  CHECK(std::equal(placed.begin(), placed.end(), index.checkpoints[1].zwindow.begin()));
  // A window that does not inflate (its file checksum made right again) is corrupt, copy or not.
  std::vector<uint8_t> bad = bytes;
  bad[cp.zwindow_offset + cp.zwindow_length / 2] ^= 0xff;
  auto refused = GzipIndex::Parse(Rechecksummed(bad), "placed", /*keep_windows=*/false);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kCorrupt);
  CHECK(refused.status().message().find("does not inflate") != std::string::npos);
}

TEST_CASE("gzip index whose sizes need more than deflate's 1032:1 is corrupt") {
  GzipIndex index = SampleIndex();
  index.decompressed_size = 1033ull * 1000 * 10;  // past the last checkpoint: 200 compressed bytes
  auto parsed = GzipIndex::Parse(*index.Serialize(), "inflated");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("more output than deflate makes") != std::string::npos);
  index = SampleIndex();
  index.checkpoints[1].out = 1040 * 404 + 1;  // 400 compressed bytes after checkpoint 0
  index.checkpoints[2].out = index.checkpoints[1].out + 1;
  index.decompressed_size = index.checkpoints[2].out + 10;
  parsed = GzipIndex::Parse(*index.Serialize(), "inflated");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().find("more output than deflate makes") != std::string::npos);
}
