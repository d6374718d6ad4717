#include "decode/zstd_entropy.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {

// Writes `nc` and reads it back as a table of kind t: all its bytes used.
ZstdNormCounts RoundTrip(const ZstdNormCounts& nc, ZstdSeqTable t) {
  const std::vector<uint8_t> bytes = WriteZstdNormCounts(nc);
  size_t used = 0;
  auto back = ReadZstdNormCounts(bytes, t, &used);
  REQUIRE(back.ok());
  CHECK(used == bytes.size());
  return std::move(back).value();
}

}  // namespace

TEST_CASE("zstd FSE table descriptions of the predefined distributions read back as written") {
  for (ZstdSeqTable t : {ZstdSeqTable::kLiteralLength, ZstdSeqTable::kOffset, ZstdSeqTable::kMatchLength}) {
    const ZstdNormCounts& nc = ZstdPredefined(t);
    int sum = 0;
    for (int16_t c : nc.counts) sum += c < 0 ? 1 : c;
    CHECK(sum == 1 << nc.accuracy_log);
    const ZstdNormCounts back = RoundTrip(nc, t);
    CHECK(back.accuracy_log == nc.accuracy_log);
    CHECK(back.counts == nc.counts);
  }
}

TEST_CASE("zstd FSE table description of one symbol with zeros before it reads back") {
  ZstdNormCounts nc;
  nc.accuracy_log = 5;
  nc.counts.assign(30, 0);
  nc.counts[29] = 32;
  CHECK(RoundTrip(nc, ZstdSeqTable::kOffset).counts == nc.counts);
  const ZstdFseTable table = ZstdFseTable::Build(nc);
  for (const auto& cell : table.cells) CHECK(cell.symbol == 29);
}

TEST_CASE("zstd FSE table descriptions beyond a table's limits are corrupt") {
  ZstdNormCounts nc;
  nc.accuracy_log = 9;
  nc.counts.assign(40, 0);
  nc.counts[39] = 512;
  const std::vector<uint8_t> bytes = WriteZstdNormCounts(nc);
  size_t used = 0;
  CHECK(ReadZstdNormCounts(bytes, ZstdSeqTable::kLiteralLength, &used).status().code() == Code::kCorrupt);
  CHECK(ReadZstdNormCounts(bytes, ZstdSeqTable::kOffset, &used).status().code() == Code::kCorrupt);
  CHECK(ReadZstdNormCounts({}, ZstdSeqTable::kOffset, &used).status().code() == Code::kCorrupt);
}

TEST_CASE("zstd length codes have the RFC's bases") {
  CHECK(ZstdLiteralLengthCode(15).base == 15);
  CHECK(ZstdLiteralLengthCode(35).base == 65536);
  CHECK(ZstdLiteralLengthCode(35).bits == 16);
  CHECK(ZstdMatchLengthCode(0).base == 3);
  CHECK(ZstdMatchLengthCode(52).base == 65539);
}
