#include "decode/raw_span_source.h"

#include <catch2/catch.hpp>

#include <mutex>

#include "base/little_endian.h"
#include "decode/index_fallback_source.h"
#include "decode/zstd_checkpoint_source.h"
#include "testing/concurrent_reads.h"
#include "testing/counting_source.h"
#include "testing/raw_zstd_data.h"

using namespace ocifs;
using ocifs::testing::CountingSource;
using ocifs::testing::RawZstdData;

namespace {

// The data's raw span source: the decoder and the raw copies each read the
// blob through their own counter.
struct RawSourceFixture {
  RawZstdData d;
  std::shared_ptr<CountingSource> for_decoder = std::make_shared<CountingSource>(d.blob);
  std::shared_ptr<CountingSource> for_raw = std::make_shared<CountingSource>(d.blob);
  std::shared_ptr<ZstdCheckpointSource> decoder = std::make_shared<ZstdCheckpointSource>(for_decoder, d.index, 4 << 20);
  std::shared_ptr<RawSpanSource> source = Open(std::make_shared<RawSpanTable>(d.raw));

  std::shared_ptr<RawSpanSource> Open(std::shared_ptr<const RawSpanTable> table) {
    auto s = RawSpanSource::Open(decoder, for_raw, std::move(table));
    REQUIRE(s.ok());
    return std::move(s).value();
  }
  std::vector<uint8_t> Expected(uint64_t at, size_t n) const {
    return {d.data.begin() + static_cast<ptrdiff_t>(at), d.data.begin() + static_cast<ptrdiff_t>(at + n)};
  }
};

}  // namespace

TEST_CASE("raw span source reads every byte exactly, concurrently, raw and decoded alike") {
  RawSourceFixture f;
  std::vector<uint8_t> all(f.d.data.size());
  REQUIRE(f.source->ReadAt(0, all).value() == all.size());
  CHECK(all == f.d.data);
  CHECK(f.source->raw_bytes_read() == f.d.raw.raw_bytes());
  CHECK(ocifs::testing::ConcurrentReadMismatches(*f.source, f.d.data, 4, 60, 11) == 0);
}

TEST_CASE("raw span source: a read inside a raw block fetches its units only, and decodes nothing") {
  RawSourceFixture f;
  const RawSpan& r = f.d.raw.spans()[2];
  const uint64_t at = r.out + 10000;
  std::vector<uint8_t> got(20000);
  REQUIRE(f.source->ReadAt(at, got).value() == got.size());
  CHECK(got == f.Expected(at, got.size()));
  CHECK(f.for_decoder->reads.load() == 0);
  CHECK(f.for_raw->bytes.load() <= got.size() + 2 * f.d.raw.unit());
  // The decoder itself would fetch a whole segment from its restart point.
  std::vector<uint8_t> again(got.size());
  REQUIRE(f.decoder->ReadAt(at, again).ok());
  CHECK(f.for_decoder->bytes.load() > 4 * got.size());
}

TEST_CASE("raw span source: a read across a raw block's end goes on in the decoder") {
  RawSourceFixture f;
  // A raw span followed by compressed text (no raw span right after it).
  size_t s = 0;
  const auto& spans = f.d.raw.spans();
  while (s + 1 < spans.size() && spans[s + 1].out == spans[s].out + spans[s].size) ++s;
  const uint64_t at = spans[s].out + spans[s].size - 5000;
  std::vector<uint8_t> got(30000);
  REQUIRE(f.source->ReadAt(at, got).value() == got.size());
  CHECK(got == f.Expected(at, got.size()));
  CHECK(f.for_decoder->reads.load() > 0);
}

TEST_CASE("raw span source reports the units it copies, and forwards hints by part") {
  RawSourceFixture f;
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> reported;
  f.source->RecordNeeded([&](uint64_t off, uint64_t len) {
    std::lock_guard lock(mu);
    reported.emplace_back(off, len);
  });
  const RawSpan& r = f.d.raw.spans()[3];
  std::vector<uint8_t> got(100);
  REQUIRE(f.source->ReadAt(r.out + 50000, got).ok());
  REQUIRE(reported.size() == 1);
  const uint64_t in = r.in + 50000;
  CHECK(reported[0].first == in / 4096 * 4096);
  CHECK(reported[0].second == 4096);
  f.source->Prefetch(r.out + 50000, 100);
  std::lock_guard lock(f.for_raw->mu);
  REQUIRE(f.for_raw->prefetches.size() == 1);
  CHECK(f.for_raw->prefetches[0] == reported[0]);
}

TEST_CASE("raw span source: a checksum that does not match fails with kDataLoss, and the fallback reads exact") {
  RawSourceFixture f;
  const RawSpanTable& t = f.d.raw;
  // The same spans, one unit's checksum wrong (a tampered table).
  std::vector<uint32_t> crcs;
  {
    const std::string bytes = t.Serialize();
    const size_t at = RawSpanTable::kHeaderSize + t.spans().size() * RawSpanTable::kRecordSize;
    for (size_t k = at; k + 4 < bytes.size(); k += 4) crcs.push_back(LoadLe<uint32_t>(reinterpret_cast<const uint8_t*>(bytes.data()) + k));
  }
  crcs[t.UnitsOf(0) + 1] ^= 1;  // span 1's second unit
  auto wrong = RawSpanTable::Make(t.blob_size(), t.decoded_size(), t.unit(), t.spans(), crcs);
  REQUIRE(wrong.ok());
  auto source = f.Open(std::make_shared<RawSpanTable>(std::move(wrong).value()));
  const RawSpan& r = t.spans()[1];
  const uint64_t at = r.out + (4096 - r.in % 4096) + 100;  // in the second unit
  std::vector<uint8_t> got(1000);
  auto n = source->ReadAt(at, got);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == Code::kDataLoss);
  CHECK(n.status().message().find("raw span table") != std::string::npos);
  IndexFallbackSource guarded(source, [&]() -> Result<ByteSourcePtr> { return ByteSourcePtr(f.decoder); },
                              "raw span table");
  REQUIRE(guarded.ReadAt(at, got).value() == got.size());
  CHECK(got == f.Expected(at, got.size()));
  CHECK(guarded.fell_back());
}

TEST_CASE("raw span source refuses a table for another blob or decoded size") {
  RawSourceFixture f;
  const RawSpanTable& t = f.d.raw;
  auto other_blob = RawSpanTable::Make(t.blob_size() + 1, t.decoded_size(), t.unit(), {}, {});
  auto other_out = RawSpanTable::Make(t.blob_size(), t.decoded_size() + 1, t.unit(), {}, {});
  REQUIRE(other_blob.ok());
  REQUIRE(other_out.ok());
  auto a = RawSpanSource::Open(f.decoder, f.for_raw, std::make_shared<RawSpanTable>(std::move(other_blob).value()));
  auto b = RawSpanSource::Open(f.decoder, f.for_raw, std::make_shared<RawSpanTable>(std::move(other_out).value()));
  CHECK(a.status().code() == Code::kCorrupt);
  CHECK(b.status().code() == Code::kCorrupt);
}
