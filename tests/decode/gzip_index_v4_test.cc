#include "decode/gzip_index_v4.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/gzip_block_checkpoints.h"
#include "decode/gzip_saved_index.h"
#include "decode/gzip_source.h"
#include "decode/index_fallback_source.h"
#include "testing/counting_source.h"
#include "testing/gzip_index_tamper.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::TempDir;

namespace {

constexpr size_t kV4Record = GzipIndexV4::kRecordSize;

uint64_t V4At64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[at + static_cast<size_t>(i)];
  return v;
}
uint32_t V4At32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 | uint32_t{b[at + 3]} << 24;
}
void V4Set32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t V4Crc(std::span<const uint8_t> b) {
  return static_cast<uint32_t>(crc32(0, b.data(), static_cast<uInt>(b.size())));
}
// `bytes` (a version 4 file) with its table's CRC-32 recomputed.
std::vector<uint8_t> V4TableRechecksummed(std::vector<uint8_t> bytes) {
  const size_t table = static_cast<size_t>(V4At64(bytes, 68));
  if (table < 4 || table > bytes.size()) return bytes;
  V4Set32(bytes, table - 4, V4Crc(std::span(bytes).first(table - 4)));
  return bytes;
}

// A 3 MiB compressible layer (deflate refers back across checkpoints, into
// their windows), its version 3 index built by a first pass, and that index
// in the version 4 layout.
struct V4Layer : ocifs::testing::IndexedGzipLayer {
  std::vector<uint8_t> v4;
  explicit V4Layer(const TempDir& dir)
      : IndexedGzipLayer(dir / "built.gzidx", ocifs::testing::MakeLayerData(3 << 20, 41), "layer-v4", 256 << 10) {
    auto bytes = GzipIndexV4::Serialize(index);
    REQUIRE(bytes.ok());
    v4 = std::move(bytes).value();
  }
  // Options for a mount with no saved index and `index_blob` as the artifact's.
  DecoderOptions LazyOptions(const TempDir& dir, ByteSourcePtr index_blob) const {
    DecoderOptions o = options;
    o.index_path = dir / "side.gzidx";  // none yet: a fallback's pass saves one here
    o.gzip_index_blob = std::move(index_blob);
    return o;
  }
};

// Reads all of `source` in 192 KiB reads, from the end backwards (so the
// first reads are far from the start), into one buffer.
Result<std::vector<uint8_t>> ReadAllBackwards(const ByteSource& source, size_t size) {
  std::vector<uint8_t> out(size);
  constexpr size_t kStep = 192 << 10;
  for (size_t end = size; end > 0;) {
    const size_t from = end > kStep ? end - kStep : 0;
    OCIFS_RETURN_IF_ERROR(ReadExactly(source, from, std::span(out).subspan(from, end - from)));
    end = from;
  }
  return out;
}

}  // namespace

TEST_CASE("gzip index v4 puts the table first and parses back to the same index") {
  TempDir dir("ocifs-gzi4");
  V4Layer layer(dir);
  const std::vector<uint8_t>& bytes = layer.v4;
  CHECK(V4At32(bytes, 8) == 4);
  const uint64_t table = V4At64(bytes, 68);
  CHECK(table == GzipIndexV4::kHeaderSize + kV4Record * layer.index.checkpoints.size() + 8 +
                     16 * layer.index.zero_runs.size() + 12 + 4 * layer.index.block_crcs.size() + 4);
  CHECK(table * 4 < bytes.size());  // the windows are most of it
  auto parsed = GzipIndexV4::Parse(bytes, "v4");
  REQUIRE(parsed.ok());
  CHECK(parsed->block_crcs == layer.index.block_crcs);
  CHECK(parsed->zero_runs == layer.index.zero_runs);
  REQUIRE(parsed->checkpoints.size() == layer.index.checkpoints.size());
  for (size_t i = 0; i < parsed->checkpoints.size(); ++i) {
    const GzipCheckpoint &a = parsed->checkpoints[i], &b = layer.index.checkpoints[i];
    CHECK((a.out == b.out && a.in == b.in && a.bits == b.bits && a.member_start == b.member_start &&
           a.window_size == b.window_size));
    std::vector<uint8_t> wa(a.window_size), wb(b.window_size);
    REQUIRE(DecompressWindow(a, wa).ok());
    REQUIRE(DecompressWindow(b, wb).ok());
    CHECK(wa == wb);
  }
  // Serialized again (windows from memory now): the same bytes.
  CHECK(*GzipIndexV4::Serialize(*parsed) == bytes);
  // Without checksums there is nothing to verify a lazy read with: refused.
  GzipIndex bare = layer.index;
  bare.block_size = 0;
  bare.block_crcs.clear();
  CHECK(GzipIndexV4::Serialize(bare).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a lazy v4 index reads only its table at open, and each window when a read needs it") {
  TempDir dir("ocifs-gzi4-lazy");
  V4Layer layer(dir);
  const uint64_t table = V4At64(layer.v4, 68);
  auto counted = std::make_shared<ocifs::testing::CountingSource>(std::make_shared<MemorySource>(layer.v4, "idx"));
  auto gz = GzipSource::Open(layer.blob, layer.LazyOptions(dir, counted));
  REQUIRE(gz.ok());
  REQUIRE((*gz)->loaded_from_file());
  REQUIRE((*gz)->verifies_reads());
  CHECK(counted->bytes.load() == GzipIndexV4::kHeaderSize + table);  // header, then the table
  CHECK(counted->reads.load() == 2);
  // One small read near the end: its checkpoint's window (two, if its checksum block
  // straddles two spans), not the rest.
  std::vector<uint8_t> buf(4096);
  const uint64_t at = layer.data.size() - 100000;
  REQUIRE(ReadExactly(**gz, at, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), layer.data.begin() + static_cast<ptrdiff_t>(at)));
  CHECK(counted->reads.load() >= 3);
  CHECK(counted->reads.load() <= 4);
  CHECK(counted->bytes.load() <= GzipIndexV4::kHeaderSize + table + 2 * (GzipCheckpoint::kWindowSize + 64));
  // The whole layer reads exactly; every window was read at most as often as its checkpoint was inflated from.
  auto all = ReadAllBackwards(**gz, layer.data.size());
  REQUIRE(all.ok());
  CHECK(*all == layer.data);
  CHECK(counted->bytes.load() < layer.v4.size() * 2);
  // No first pass ran: nothing was saved at the side path.
  CHECK_FALSE(std::filesystem::exists(dir / "side.gzidx"));
}

TEST_CASE("a lazy v4 index for another blob, or truncated anywhere, is not used: the layer reads exactly by its own pass") {
  TempDir dir("ocifs-gzi4-cut");
  V4Layer layer(dir);
  std::mt19937 rng(43);
  std::vector<size_t> cuts = {0, 10, GzipIndexV4::kHeaderSize, static_cast<size_t>(V4At64(layer.v4, 68)) - 1,
                              static_cast<size_t>(V4At64(layer.v4, 68)), layer.v4.size() - 1};
  for (int i = 0; i < 40; ++i) cuts.push_back(rng() % layer.v4.size());
  for (size_t n : cuts) {
    INFO("cut at " << n);
    std::vector<uint8_t> cut(layer.v4.begin(), layer.v4.begin() + static_cast<ptrdiff_t>(n));
    auto blob = std::make_shared<MemorySource>(cut, "idx");
    CHECK_FALSE(GzipIndexV4::Open(blob, "cut").ok());
    CHECK_FALSE(OpenLazyGzipIndexFor(*layer.blob, blob).has_value());
  }
  // A whole, valid index of another blob of another size.
  TempDir other_dir("ocifs-gzi4-other");
  ocifs::testing::IndexedGzipLayer other(other_dir / "o.gzidx", ocifs::testing::MakeLayerData(1 << 20, 44), "other");
  auto other_v4 = GzipIndexV4::Serialize(other.index);
  REQUIRE(other_v4.ok());
  CHECK_FALSE(OpenLazyGzipIndexFor(*layer.blob, std::make_shared<MemorySource>(*other_v4, "other-idx")).has_value());
  CHECK(OpenLazyGzipIndexFor(*layer.blob, std::make_shared<MemorySource>(layer.v4, "idx")).has_value());
}

TEST_CASE("random bit flips of a lazy v4 index, table or windows, give a clean refusal or exact bytes, never wrong ones") {
  TempDir dir("ocifs-gzi4-flip");
  V4Layer layer(dir);
  // Version 5 too: checkpoints inside deflate blocks, their block headers before their windows.
  const bool inside_blocks = GENERATE(false, true);
  if (inside_blocks) {
    BlockCheckpointStats stats;
    const std::vector<std::pair<uint64_t, uint64_t>> targets = {{100000, 140000}, {400000, 420000}, {700000, 800000}};
    REQUIRE(AddBlockCheckpoints(*layer.blob, layer.index, GzipTargetPlacer::Plan(targets, 32 << 10, 3584, 256 << 10),
                                "layer-v4", {}, &stats)
                .ok());
    REQUIRE(stats.added >= 4);
    auto bytes = GzipIndexV4::Serialize(layer.index);
    REQUIRE(bytes.ok());
    REQUIRE((*bytes)[8] == GzipIndexV4::kVersionInsideBlocks);
    layer.v4 = std::move(bytes).value();
  }
  INFO((inside_blocks ? "version 5" : "version 4"));
  const size_t table = static_cast<size_t>(V4At64(layer.v4, 68));
  std::mt19937 rng(45);
  int refused = 0, fell_back = 0, read_through = 0;
  for (int i = 0; i < 48; ++i) {
    std::vector<uint8_t> bad = layer.v4;
    // Half in the table (its CRC recomputed every other time, so the field checks and the
    // block checksums are what must catch it), half in the windows.
    const bool in_table = i % 2 == 0;
    const size_t byte = in_table ? rng() % table : table + rng() % (bad.size() - table);
    bad[byte] ^= static_cast<uint8_t>(1u << (rng() % 8));
    if (in_table && i % 4 == 0) bad = V4TableRechecksummed(bad);
    if (!in_table && i % 4 == 1) {
      // The window's own CRC made right too: only the layer's block checksums can tell.
      for (size_t r = 0; r < layer.index.checkpoints.size(); ++r) {
        const size_t rec = GzipIndexV4::kHeaderSize + r * kV4Record;
        const uint64_t off = V4At64(bad, rec + 24);
        const uint32_t len = V4At32(bad, rec + 32);
        if (len > 0 && byte >= off && byte < off + len) V4Set32(bad, rec + 36, V4Crc(std::span(bad).subspan(off, len)));
      }
      bad = V4TableRechecksummed(bad);
    }
    INFO("flip " << i << " at byte " << byte << (in_table ? " (table)" : " (windows)"));
    TempDir side("ocifs-gzi4-flip-side");
    auto decoded = OpenDecoded(layer.blob, Compression::kGzip,
                               layer.LazyOptions(side, std::make_shared<MemorySource>(bad, "idx")));
    REQUIRE(decoded.ok());
    if ((*decoded)->access() == ByteSource::Access::kStream) ++refused;  // not used: a first pass
    auto all = ReadAllBackwards(**decoded, layer.data.size());
    REQUIRE(all.ok());
    REQUIRE(*all == layer.data);
    if (auto* fb = dynamic_cast<const IndexFallbackSource*>(decoded->get())) {
      if (fb->fell_back()) {
        ++fell_back;
      } else {
        ++read_through;  // a byte reads never needed, or one the parser cannot judge and reads prove right
      }
    }
  }
  CHECK(refused > 0);
  CHECK(fell_back > 0);
}
