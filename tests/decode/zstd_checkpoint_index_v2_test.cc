#include "decode/zstd_checkpoint_index_v2.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/zstd_checkpoint_builder.h"
#include "decode/zstd_checkpoint_source.h"
#include "testing/counting_source.h"
#include "testing/temp_dir.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;
using ocifs::testing::CountingSource;
using ocifs::testing::TempDir;

namespace {

constexpr size_t kHeader = ZstdCheckpointIndexV2::kHeaderSize;
constexpr size_t kRecord = ZstdCheckpointIndexV2::kRecordSize;

uint64_t At64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | b[at + static_cast<size_t>(i)];
  return v;
}
uint32_t CkptV2At32(const std::vector<uint8_t>& b, size_t at) { return static_cast<uint32_t>(At64(b, at) & 0xFFFFFFFFu); }
void Set32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Crc(std::span<const uint8_t> b) { return static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), b.data(), b.size())); }
size_t TableOf(const std::vector<uint8_t>& b) { return static_cast<size_t>(At64(b, 56)); }
// `bytes` with its table's CRC-32 recomputed (so a flip inside the table gets past it).
std::vector<uint8_t> TableRechecksummed(std::vector<uint8_t> bytes) {
  const size_t table = TableOf(bytes);
  if (table < 4 || table > bytes.size()) return bytes;
  Set32(bytes, table - 4, Crc(std::span(bytes).first(table - 4)));
  return bytes;
}

// A 3 MiB single-frame layer whose matches reach across checkpoints (into
// their dictionaries), its checkpoint index, and that index as version 2.
struct V2Layer {
  std::vector<uint8_t> data = ocifs::testing::MakeZstdTestData(ocifs::testing::ZstdDataKind::kFarRepeats, 3 << 20, 9);
  std::shared_ptr<MemorySource> blob =
      std::make_shared<MemorySource>(ocifs::testing::CompressZstdFrame(data, {.level = 3, .checksum = true}), "blob");
  ZstdCheckpointIndex index;
  std::vector<uint8_t> v2;
  V2Layer() {
    ZstdCheckpointOptions o;
    o.spacing = 256 << 10;
    auto built = BuildZstdCheckpoints(*blob, o);
    REQUIRE(built.ok());
    index = std::move(built).value();
    auto bytes = ZstdCheckpointIndexV2::Serialize(index);
    REQUIRE(bytes.ok());
    v2.assign(bytes->begin(), bytes->end());
  }
  size_t dicts() const {
    return static_cast<size_t>(std::count_if(index.checkpoints.begin(), index.checkpoints.end(), [](const auto& c) {
      return c.kind == ZstdCheckpoint::Kind::kDictionary;
    }));
  }
};

// Reads all of `source` in 192 KiB reads from the end backwards; a read that
// fails must fail as a wrong index does (kDataLoss, kCorrupt), and the bytes
// of every read that succeeds must be the layer's. Returns whether all read.
bool ReadsExactOrRefuses(const ByteSource& source, const std::vector<uint8_t>& data) {
  constexpr size_t kStep = 192 << 10;
  bool all = true;
  std::vector<uint8_t> buf;
  for (size_t end = data.size(); end > 0;) {
    const size_t from = end > kStep ? end - kStep : 0;
    buf.assign(end - from, 0);
    Status s = ReadExactly(source, from, buf);
    if (s.ok()) {
      CHECK(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(from)));
    } else {
      CHECK((s.code() == Code::kDataLoss || s.code() == Code::kCorrupt));
      all = false;
    }
    end = from;
  }
  return all;
}

// Opens `bytes` lazily over the layer's blob; a table it refuses must be kCorrupt.
std::shared_ptr<ZstdCheckpointSource> OpenLazily(const V2Layer& layer, std::vector<uint8_t> bytes) {
  auto index = ZstdCheckpointIndexV2::Open(std::make_shared<MemorySource>(std::move(bytes), "index"));
  if (!index.ok()) {
    CHECK(index.status().code() == Code::kCorrupt);
    return nullptr;
  }
  auto source = ZstdCheckpointSource::Open(layer.blob, std::move(index).value(), 4 << 20);
  if (!source.ok()) {
    CHECK(source.status().code() == Code::kCorrupt);
    return nullptr;
  }
  return std::move(source).value();
}

}  // namespace

TEST_CASE("zstd checkpoint index v2 puts the table first and parses back to the same index") {
  V2Layer layer;
  REQUIRE(layer.dicts() >= 4);
  const std::vector<uint8_t>& b = layer.v2;
  CHECK(std::string(b.begin(), b.begin() + 8) == "OCIFSZCI");
  CHECK(CkptV2At32(b, 8) == 2);
  const size_t table = TableOf(b);
  CHECK(table == kHeader + kRecord * layer.index.checkpoints.size() + 4 * layer.index.crcs.size() + 4);
  CHECK(table * 4 < b.size());  // the dictionaries are most of it
  auto parsed = ZstdCheckpointIndexV2::Parse(b);
  REQUIRE(parsed.ok());
  CHECK(parsed->blob_size == layer.index.blob_size);
  CHECK(parsed->decoded_size == layer.index.decoded_size);
  CHECK(parsed->window_log == layer.index.window_log);
  CHECK(parsed->spacing == layer.index.spacing);
  CHECK(parsed->crcs == layer.index.crcs);
  REQUIRE(parsed->checkpoints.size() == layer.index.checkpoints.size());
  for (size_t i = 0; i < parsed->checkpoints.size(); ++i) {
    const ZstdCheckpoint &a = parsed->checkpoints[i], &e = layer.index.checkpoints[i];
    CHECK((a.in == e.in && a.out == e.out && a.kind == e.kind && a.dict_size == e.dict_size && a.zdict == e.zdict));
  }
  // Serialized again: the same bytes; a version 1 parser refuses it by its version.
  auto again = ZstdCheckpointIndexV2::Serialize(*parsed);
  REQUIRE(again.ok());
  CHECK(std::vector<uint8_t>(again->begin(), again->end()) == b);
  CHECK(ZstdCheckpointIndex::Parse(b).status().code() == Code::kCorrupt);
  // A table opened lazily has no dictionary in memory: it cannot be written out again.
  auto lazy = ZstdCheckpointIndexV2::Open(std::make_shared<MemorySource>(b));
  REQUIRE(lazy.ok());
  CHECK(ZstdCheckpointIndexV2::Serialize(*lazy).status().code() == Code::kInvalidArgument);
}

TEST_CASE("a lazy zstd checkpoint index reads only its table at open, and a dictionary when a read needs it") {
  V2Layer layer;
  const size_t table = TableOf(layer.v2);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(layer.v2, "idx"));
  auto index = ZstdCheckpointIndexV2::Open(counted);
  REQUIRE(index.ok());
  CHECK(counted->reads.load() == 2);  // the header, then the table
  CHECK(counted->bytes.load() == kHeader + table);
  auto source = ZstdCheckpointSource::Open(layer.blob, std::move(index).value(), 4 << 20);
  REQUIRE(source.ok());
  // A small read near the end: one dictionary (two if its checksum block straddles two segments).
  const uint64_t at = layer.data.size() - 100000;
  std::vector<uint8_t> buf(4096);
  REQUIRE(ReadExactly(**source, at, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), layer.data.begin() + static_cast<ptrdiff_t>(at)));
  CHECK(counted->reads.load() >= 3);
  CHECK(counted->reads.load() <= 4);
  CHECK(counted->bytes.load() < kHeader + table + (layer.v2.size() - table) / 2);
  // The whole layer reads exactly, each dictionary fetched once per use (at most the LRU's misses).
  CHECK(ReadsExactOrRefuses(**source, layer.data));
  CHECK(counted->bytes.load() < layer.v2.size() * 3);
}

TEST_CASE("a zstd checkpoint index v2 truncated anywhere is refused") {
  V2Layer layer;
  const size_t table = TableOf(layer.v2);
  std::vector<size_t> cuts;
  for (size_t n = 0; n <= table; ++n) cuts.push_back(n);  // every field of the header and table
  std::mt19937 rng(7);
  for (int i = 0; i < 50; ++i) cuts.push_back(table + rng() % (layer.v2.size() - table));  // inside the dictionaries
  cuts.push_back(layer.v2.size() - 1);
  for (size_t n : cuts) {
    INFO("cut at " << n);
    const std::vector<uint8_t> cut(layer.v2.begin(), layer.v2.begin() + static_cast<ptrdiff_t>(n));
    auto whole = ZstdCheckpointIndexV2::Parse(cut);
    REQUIRE_FALSE(whole.ok());
    CHECK(whole.status().code() == Code::kCorrupt);
    CHECK(whole.status().message().rfind("zstd checkpoint index: ", 0) == 0);
    auto lazy = ZstdCheckpointIndexV2::Open(std::make_shared<MemorySource>(cut));
    REQUIRE_FALSE(lazy.ok());
    CHECK(lazy.status().code() == Code::kCorrupt);
  }
}

TEST_CASE("random bit flips in a zstd checkpoint index v2 table are refused or read exactly, never wrong bytes") {
  V2Layer layer;
  const size_t table = TableOf(layer.v2);
  std::mt19937 rng(11);
  int refused = 0, exact = 0;
  for (int k = 0; k < 120; ++k) {
    std::vector<uint8_t> bytes = layer.v2;
    const size_t at = rng() % (table - 4);
    bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    INFO("flip at " << at);
    // As it is, the table's CRC-32 catches it.
    CHECK(ZstdCheckpointIndexV2::Parse(bytes).status().code() == Code::kCorrupt);
    // With the CRC made right, the checks of the fields, the dictionaries' CRCs or the reads' block checksums do.
    auto source = OpenLazily(layer, TableRechecksummed(bytes));
    if (!source) {
      ++refused;
      continue;
    }
    if (ReadsExactOrRefuses(*source, layer.data)) ++exact;
  }
  CHECK(refused > 10);  // most fields are checked at open
  INFO(refused << " refused, " << exact << " read exactly");
}

TEST_CASE("random bit flips in a zstd checkpoint index v2 dictionary give kDataLoss, never wrong bytes") {
  V2Layer layer;
  const size_t table = TableOf(layer.v2);
  std::mt19937 rng(13);
  for (int k = 0; k < 40; ++k) {
    std::vector<uint8_t> bytes = layer.v2;
    const size_t at = table + rng() % (bytes.size() - table);
    bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    INFO("flip at " << at);
    auto source = OpenLazily(layer, bytes);
    REQUIRE(source);  // the table is intact: the flip shows when the dictionary is read
    CHECK_FALSE(ReadsExactOrRefuses(*source, layer.data));
    // Its CRC-32 made to match (a tamperer's): the dictionary decodes to wrong bytes, which the block checksums catch.
    for (size_t i = 0; i < layer.index.checkpoints.size(); ++i) {
      const size_t rec = kHeader + kRecord * i;
      const uint64_t off = At64(bytes, rec + 24);
      const uint32_t len = CkptV2At32(bytes, rec + 32);
      if (len > 0 && at >= off && at < off + len) Set32(bytes, rec + 36, Crc(std::span(bytes).subspan(off, len)));
    }
    auto tampered = OpenLazily(layer, TableRechecksummed(bytes));
    REQUIRE(tampered);
    (void)ReadsExactOrRefuses(*tampered, layer.data);
  }
}

TEST_CASE("a layer opened with a lazy zstd checkpoint index falls back to the stream and marks it when it proves wrong") {
  TempDir dir("ocifs-zci2");
  V2Layer layer;
  std::vector<uint8_t> bytes = layer.v2;
  const size_t table = TableOf(bytes);
  bytes[table + (bytes.size() - table) / 2] ^= 0x20;  // a dictionary in the middle
  DecoderOptions o;
  o.zstd_checkpoint_path = dir / "side.zstdckpt";
  o.zstd_checkpoint_blob = std::make_shared<MemorySource>(bytes, "index");
  o.zstd_checkpoint_from = "a test";
  auto decoded = OpenDecoded(layer.blob, Compression::kZstd, o);
  REQUIRE(decoded.ok());
  CHECK((*decoded)->size() == layer.data.size());  // from the table, before any read
  std::vector<uint8_t> all(layer.data.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == layer.data);
  // The side file now holds the mark: a second open streams without reading the index blob.
  REQUIRE(std::filesystem::exists(dir / "side.zstdckpt"));
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(layer.v2, "idx"));
  o.zstd_checkpoint_blob = counted;
  auto second = OpenDecoded(layer.blob, Compression::kZstd, o);
  REQUIRE(second.ok());
  REQUIRE(ReadExactly(**second, 0, all).ok());
  CHECK(all == layer.data);
  CHECK(counted->reads.load() == 0);
}

TEST_CASE("a lazy zstd checkpoint index for a blob of another size is ignored for the stream") {
  V2Layer layer;
  ZstdCheckpointIndex other = layer.index;
  other.blob_size += 1;
  auto bytes = ZstdCheckpointIndexV2::Serialize(other);
  REQUIRE(bytes.ok());
  DecoderOptions o;
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(
      std::vector<uint8_t>(bytes->begin(), bytes->end()), "idx"));
  o.zstd_checkpoint_blob = counted;
  auto decoded = OpenDecoded(layer.blob, Compression::kZstd, o);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> all(layer.data.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(all == layer.data);
  CHECK(counted->reads.load() == 2);  // its table, no dictionary
}
