// GzipCheckpoints: a first pass's table keeps its checkpoints' windows in a
// spill file (SpillWindowsTo), so they cost no memory, and serves them exact,
// in a saved index too.
#include "decode/gzip_checkpoints.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <random>

#include "testing/temp_dir.h"

using namespace ocifs;

namespace {

std::vector<uint8_t> CheckpointWindow(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> w(GzipCheckpoint::kWindowSize);
  for (auto& b : w) b = static_cast<uint8_t>(rng() % 13);  // compressible, distinct per seed
  return w;
}

GzipCheckpoint WindowedCheckpoint(uint64_t out, uint64_t in, const std::vector<uint8_t>& window) {
  GzipCheckpoint cp;
  cp.out = out;
  cp.in = in;
  cp.window_size = static_cast<uint32_t>(window.size());
  cp.zwindow = CompressWindow(window);
  return cp;
}

// A table spilling to `dir`, with its member-start checkpoint (no window) appended.
void StartSpilledTable(GzipCheckpoints& table, const std::string& dir) {
  REQUIRE(table.SpillWindowsTo(dir));
  GzipCheckpoint first;
  first.member_start = true;
  table.Append(first);  // no window: nothing spilled
}

// Open descriptors of this process on unlinked files in `dir`: the spill file's.
int OpenUnlinkedFilesIn(const std::string& dir_path) {
  const std::string dir = std::filesystem::canonical(dir_path).string();
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.starts_with(dir + "/") && target.ends_with(" (deleted)")) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("GzipCheckpoints spills appended windows to a file and serves them exact") {
  ocifs::testing::TempDir dir;
  GzipCheckpoints table;
  StartSpilledTable(table, dir.path());
  std::vector<std::vector<uint8_t>> windows;
  for (uint32_t i = 1; i <= 20; ++i) {
    windows.push_back(CheckpointWindow(i));
    GzipCheckpoint cp = WindowedCheckpoint(i * (1 << 20), i * 500000, windows.back());
    if (i == 7) {  // inside a deflate block: its header goes with its window
      cp.header_bits = 13;
      cp.block_header = {0xa5, 0x1c};
    }
    table.Append(std::move(cp));
  }
  REQUIRE(table.count() == 21);
  // The spill file has no name: the dir holds no file.
  CHECK(std::filesystem::is_empty(dir.path()));
  std::vector<uint8_t> out(GzipCheckpoint::kWindowSize);
  std::vector<uint8_t> header;
  for (size_t i = 1; i <= 20; ++i) {
    const GzipCheckpoint cp = table.At(i);
    CHECK(cp.zwindow.empty());  // not in memory
    CHECK(cp.block_header.empty());
    REQUIRE(cp.window_file != nullptr);
    REQUIRE(DecompressWindow(cp, out, &header).ok());
    CHECK(out == windows[i - 1]);
    CHECK(header == (i == 7 ? std::vector<uint8_t>{0xa5, 0x1c} : std::vector<uint8_t>{}));
  }
  CHECK(table.At(0).window_file == nullptr);
}

TEST_CASE("GzipCheckpoints saves a spilled table's windows, and reads them from the saved index after") {
  ocifs::testing::TempDir dir;
  GzipCheckpoints table;
  StartSpilledTable(table, dir.path());
  std::vector<std::vector<uint8_t>> windows;
  for (uint32_t i = 1; i <= 10; ++i) {
    windows.push_back(CheckpointWindow(100 + i));
    table.Append(WindowedCheckpoint(i * (1 << 20), i * 500000, windows.back()));
  }
  GzipIndex index;
  index.compressed_size = 11 * 500000;
  index.decompressed_size = 11 << 20;
  index.spacing = 1 << 20;
  const std::string path = dir.path() + "/layer.gzidx";
  CHECK(OpenUnlinkedFilesIn(dir.path()) == 2);  // the spill file: the writer's fd and the readers'
  std::optional<GzipCheckpoint> read_before = table.At(3);  // a read in flight across the save
  const Status saved = table.SaveComplete(index, path);
  INFO(saved.ToString());
  REQUIRE(saved.ok());
  std::vector<uint8_t> out(GzipCheckpoint::kWindowSize);
  for (size_t i = 1; i <= 10; ++i) {
    const GzipCheckpoint cp = table.At(i);
    REQUIRE(cp.window_file != nullptr);
    CHECK(cp.window_file != read_before->window_file);  // the index's file, not the spill file
    REQUIRE(DecompressWindow(cp, out).ok());
    CHECK(out == windows[i - 1]);
  }
  // The read begun before the save still reads its window from the spill
  // file, which goes with it.
  CHECK(OpenUnlinkedFilesIn(dir.path()) == 1);
  REQUIRE(DecompressWindow(*read_before, out).ok());
  CHECK(out == windows[2]);
  read_before.reset();
  CHECK(OpenUnlinkedFilesIn(dir.path()) == 0);
  // The file on its own: the same windows.
  auto loaded = GzipIndex::Load(path);
  REQUIRE(loaded.ok());
  REQUIRE(loaded->checkpoints.size() == 11);
  for (size_t i = 1; i <= 10; ++i) {
    REQUIRE(DecompressWindow(loaded->checkpoints[i], out).ok());
    CHECK(out == windows[i - 1]);
  }
}

TEST_CASE("GzipCheckpoints keeps windows in memory where it cannot spill them") {
  ocifs::testing::TempDir dir;
  GzipCheckpoints table;
  CHECK_FALSE(table.SpillWindowsTo(dir.path() + "/missing"));
  const std::vector<uint8_t> window = CheckpointWindow(99);
  table.Append(WindowedCheckpoint(0, 0, window));
  const GzipCheckpoint cp = table.At(0);
  CHECK(cp.window_file == nullptr);
  CHECK_FALSE(cp.zwindow.empty());
  std::vector<uint8_t> out(window.size());
  REQUIRE(DecompressWindow(cp, out).ok());
  CHECK(out == window);
}
