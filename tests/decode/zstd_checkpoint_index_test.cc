#include "decode/zstd_checkpoint_index.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "decode/zstd_checkpoint_builder.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;

namespace {

ZstdCheckpointIndex CkptSampleIndex() {
  static const ZstdCheckpointIndex index = [] {
    const auto data = ocifs::testing::MakeZstdTestData(ocifs::testing::ZstdDataKind::kText, 600 << 10, 3);
    MemorySource blob(ocifs::testing::CompressZstdFrame(data, {.level = 3}));
    ZstdCheckpointOptions o;
    o.spacing = 128 << 10;
    auto built = BuildZstdCheckpoints(blob, o);
    REQUIRE(built.ok());
    return std::move(built).value();
  }();
  return index;
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// The same bytes with the trailing file checksum recomputed.
std::vector<uint8_t> CkptRechecksummed(std::vector<uint8_t> b) {
  if (b.size() < 4) return b;
  const uint32_t crc = static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), b.data(), b.size() - 4));
  for (int i = 0; i < 4; ++i) b[b.size() - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  return b;
}

Status ParseStatus(const ZstdCheckpointIndex& index) {
  const std::vector<uint8_t> b = Bytes(index.Serialize());
  return ZstdCheckpointIndex::Parse(b).status();
}

}  // namespace

TEST_CASE("zstd checkpoint index serializes and parses back to the same checkpoints") {
  const ZstdCheckpointIndex index = CkptSampleIndex();
  REQUIRE(index.checkpoints.size() >= 4);
  const std::vector<uint8_t> bytes = Bytes(index.Serialize());
  auto parsed = ZstdCheckpointIndex::Parse(bytes);
  REQUIRE(parsed.ok());
  CHECK(parsed->blob_size == index.blob_size);
  CHECK(parsed->decoded_size == index.decoded_size);
  CHECK(parsed->window_log == index.window_log);
  CHECK(parsed->crcs == index.crcs);
  REQUIRE(parsed->checkpoints.size() == index.checkpoints.size());
  for (size_t i = 0; i < index.checkpoints.size(); ++i) {
    CHECK(parsed->checkpoints[i].in == index.checkpoints[i].in);
    CHECK(parsed->checkpoints[i].out == index.checkpoints[i].out);
    CHECK(parsed->checkpoints[i].kind == index.checkpoints[i].kind);
    CHECK(parsed->checkpoints[i].zdict == index.checkpoints[i].zdict);
  }
  CHECK(parsed->Serialize() == index.Serialize());
}

TEST_CASE("zstd checkpoint index: Dicts::kSkip checks the same but keeps no dictionary") {
  const ZstdCheckpointIndex index = CkptSampleIndex();
  const std::vector<uint8_t> bytes = Bytes(index.Serialize());
  auto skipped = ZstdCheckpointIndex::Parse(bytes, ZstdCheckpointIndex::Dicts::kSkip);
  REQUIRE(skipped.ok());
  CHECK(skipped->blob_size == index.blob_size);
  CHECK(skipped->decoded_size == index.decoded_size);
  CHECK(skipped->crcs == index.crcs);
  REQUIRE(skipped->checkpoints.size() == index.checkpoints.size());
  size_t with_dict = 0;
  for (size_t i = 0; i < index.checkpoints.size(); ++i) {
    CHECK(skipped->checkpoints[i].in == index.checkpoints[i].in);
    CHECK(skipped->checkpoints[i].out == index.checkpoints[i].out);
    CHECK(skipped->checkpoints[i].kind == index.checkpoints[i].kind);
    CHECK(skipped->checkpoints[i].dict_size == index.checkpoints[i].dict_size);
    CHECK(skipped->checkpoints[i].zdict.empty());
    with_dict += index.checkpoints[i].zdict.empty() ? 0 : 1;
  }
  CHECK(with_dict > 0);  // the sample has dictionaries to skip
  // Each truncation and bit flip refused by the copying parse is refused by the skipping one, with the same message.
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> bad = bytes;
    if (i % 3 == 0) {
      bad.resize(rng() % bytes.size());
    } else {
      const size_t bit = rng() % (bad.size() * 8);
      bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    }
    for (const auto& candidate : {bad, CkptRechecksummed(bad)}) {
      auto copied = ZstdCheckpointIndex::Parse(candidate);
      auto checked = ZstdCheckpointIndex::Parse(candidate, ZstdCheckpointIndex::Dicts::kSkip);
      INFO("case " << i);
      REQUIRE(copied.ok() == checked.ok());
      if (!copied.ok()) CHECK(checked.status().message() == copied.status().message());
    }
  }
}

TEST_CASE("zstd checkpoint index: every truncation fails as corrupt") {
  const std::vector<uint8_t> bytes = Bytes(CkptSampleIndex().Serialize());
  for (size_t n = 0; n < bytes.size(); n += 1 + n / 64) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    for (const auto& candidate : {cut, CkptRechecksummed(cut)}) {
      INFO("length " << n);
      auto parsed = ZstdCheckpointIndex::Parse(candidate);
      REQUIRE_FALSE(parsed.ok());
      REQUIRE(parsed.status().code() == Code::kCorrupt);
      REQUIRE(parsed.status().message().rfind("zstd checkpoint index: ", 0) == 0);
    }
  }
}

TEST_CASE("zstd checkpoint index: random bit flips fail as corrupt, or with a recomputed checksum load what the file says") {
  const std::vector<uint8_t> bytes = Bytes(CkptSampleIndex().Serialize());
  std::mt19937 rng(23);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    std::vector<uint8_t> bad = bytes;
    // Half the flips land in the header and the checkpoint records.
    const size_t span = i % 2 == 0 ? std::min<size_t>(bad.size(), 200) : bad.size();
    const size_t bit = rng() % (span * 8);
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    INFO("bit " << bit);
    auto raw = ZstdCheckpointIndex::Parse(bad);
    REQUIRE_FALSE(raw.ok());
    REQUIRE(raw.status().code() == Code::kCorrupt);
    if (bit / 8 >= bad.size() - 4) continue;
    const std::vector<uint8_t> rechecked = CkptRechecksummed(bad);
    auto parsed = ZstdCheckpointIndex::Parse(rechecked);
    if (parsed.ok()) {
      ++loaded;  // a field the parser cannot judge (a checksum, a dictionary byte): read as written
      REQUIRE(Bytes(parsed->Serialize()) == rechecked);
    } else {
      ++refused;
      REQUIRE(parsed.status().code() == Code::kCorrupt);
    }
  }
  CHECK(loaded > 0);
  CHECK(refused > 0);
}

TEST_CASE("zstd checkpoint index with a valid checksum but wrong fields names the field") {
  auto expect = [](const ZstdCheckpointIndex& index, const std::string& what) {
    const Status s = ParseStatus(index);
    INFO(s.ToString());
    REQUIRE(s.code() == Code::kCorrupt);
    CHECK(s.message().find(what) != std::string::npos);
  };
  ZstdCheckpointIndex x = CkptSampleIndex();
  std::swap(x.checkpoints[1], x.checkpoints[2]);
  expect(x, "out of order");
  x = CkptSampleIndex();
  x.window_log = 40;
  expect(x, "window log");
  x = CkptSampleIndex();
  x.checkpoints[0].kind = ZstdCheckpoint::Kind::kFromFrameStart;
  expect(x, "no frame start");
  x = CkptSampleIndex();
  x.checkpoints[1].kind = ZstdCheckpoint::Kind::kFrameStart;
  expect(x, "wrong kind");
  x = CkptSampleIndex();
  x.checkpoints.back().out = x.decoded_size;
  expect(x, "past the end");
  x = CkptSampleIndex();
  x.checkpoints[1].dict_size = ZstdCheckpointIndex::kMaxDictSize + 1;
  expect(x, "too large");
  x = CkptSampleIndex();
  x.crcs.pop_back();
  expect(x, "checksum count");
  x = CkptSampleIndex();
  x.crc_block_size = 1000;
  expect(x, "block size");
  x = CkptSampleIndex();
  x.checkpoints.clear();
  expect(x, "checkpoint count 0");
}
