#include "decode/zstd_checkpoint_source.h"

#include <zstd.h>

#include <catch2/catch.hpp>

#include "base/memory_source.h"
#include "decode/index_fallback_source.h"
#include "decode/zstd_checkpoint_builder.h"
#include "testing/concurrent_reads.h"
#include "testing/counting_source.h"
#include "testing/zstd_test_data.h"

using namespace ocifs;
using ocifs::testing::CountingSource;

namespace {

ZstdCheckpointIndex CkptSourceBuild(const ByteSource& blob) {
  ZstdCheckpointOptions o;
  o.spacing = 256 << 10;
  auto built = BuildZstdCheckpoints(blob, o);
  REQUIRE(built.ok());
  return std::move(built).value();
}

struct Fixture {
  std::vector<uint8_t> data = ocifs::testing::MakeZstdTestData(ocifs::testing::ZstdDataKind::kFarRepeats, 3 << 20, 8);
  std::shared_ptr<MemorySource> blob =
      std::make_shared<MemorySource>(ocifs::testing::CompressZstdFrame(data, {.level = 3, .checksum = true}), "blob");
  ZstdCheckpointIndex index = CkptSourceBuild(*blob);
  // The first checkpoint with a dictionary.
  size_t DictCheckpoint() const {
    for (size_t i = 0; i < index.checkpoints.size(); ++i) {
      if (index.checkpoints[i].kind == ZstdCheckpoint::Kind::kDictionary) return i;
    }
    FAIL("no dictionary checkpoint");
    return 0;
  }
};

Status CkptSourceReadAll(const ByteSource& source) {
  std::vector<uint8_t> buf(source.size());
  return source.ReadAt(0, buf).status();
}

}  // namespace

TEST_CASE("zstd checkpoint source opens from index bytes and reads concurrently") {
  Fixture f;
  const std::string bytes = BuildZstdCheckpointIndex(*f.blob, {}).value();
  auto source = ZstdCheckpointSource::Open(f.blob, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
                                           4 << 20);
  REQUIRE(source.ok());
  CHECK((*source)->size() == f.data.size());
  CHECK(ocifs::testing::ConcurrentReadMismatches(**source, f.data, 4, 50, 3) == 0);
}

TEST_CASE("zstd checkpoint source refuses an index made for a blob of another size") {
  Fixture f;
  const std::string bytes = f.index.Serialize();
  auto other = std::make_shared<MemorySource>(std::vector<uint8_t>(f.blob->size() + 1));
  auto source = ZstdCheckpointSource::Open(other, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, 1 << 20);
  REQUIRE_FALSE(source.ok());
  CHECK(source.status().code() == Code::kCorrupt);
}

TEST_CASE("zstd checkpoint source fetches only the compressed bytes of the segments a read needs") {
  Fixture f;
  auto counting = std::make_shared<CountingSource>(f.blob);
  ZstdCheckpointSource source(counting, f.index, 4 << 20);
  REQUIRE(f.index.checkpoints.size() >= 6);
  const uint64_t at = f.index.checkpoints[5].out + 1000;
  std::vector<uint8_t> got(4096);
  REQUIRE(source.ReadAt(at, got).ok());
  CHECK(std::equal(got.begin(), got.end(), f.data.begin() + static_cast<ptrdiff_t>(at)));
  CHECK(counting->bytes.load() < f.blob->size() / 3);
}

TEST_CASE("zstd checkpoint source: a wrong checksum in the index fails the read with kDataLoss") {
  Fixture f;
  ZstdCheckpointIndex index = f.index;
  index.crcs[index.crcs.size() / 2] ^= 1;
  ZstdCheckpointSource source(f.blob, std::move(index), 4 << 20);
  auto r = CkptSourceReadAll(source);
  CHECK(r.code() == Code::kDataLoss);
}

TEST_CASE("zstd checkpoint source: a changed dictionary byte gives kDataLoss, never wrong bytes") {
  Fixture f;
  const size_t i = f.DictCheckpoint();
  ZstdCheckpoint& c = f.index.checkpoints[i];
  std::vector<uint8_t> dict(c.dict_size);
  REQUIRE(ZSTD_decompress(dict.data(), dict.size(), c.zdict.data(), c.zdict.size()) == dict.size());
  // The content (most of the dictionary: the tables take a few hundred bytes).
  REQUIRE(dict.size() > 8192);
  for (size_t k = dict.size() / 2; k < dict.size(); ++k) dict[k] ^= 0x5A;
  c.zdict.resize(ZSTD_compressBound(dict.size()));
  c.zdict.resize(ZSTD_compress(c.zdict.data(), c.zdict.size(), dict.data(), dict.size(), 1));
  const uint64_t from = c.out, to = f.index.SegmentEnd(i);
  ZstdCheckpointSource source(f.blob, std::move(f.index), 4 << 20);
  std::vector<uint8_t> got(to - from);
  CHECK(source.ReadAt(from, got).status().code() == Code::kDataLoss);
}

TEST_CASE("zstd checkpoint source: a changed compressed byte gives kDataLoss, and the fallback serves") {
  Fixture f;
  std::vector<uint8_t> damaged = f.blob->bytes();
  damaged[damaged.size() / 2] ^= 0x10;
  auto blob = std::make_shared<MemorySource>(std::move(damaged));
  auto primary = std::make_shared<ZstdCheckpointSource>(blob, f.index, 4 << 20);
  CHECK(CkptSourceReadAll(*primary).code() == Code::kDataLoss);
  auto fresh = std::make_shared<ZstdCheckpointSource>(f.blob, f.index, 4 << 20);
  const auto good = std::make_shared<MemorySource>(f.data);
  IndexFallbackSource fallback(std::make_shared<ZstdCheckpointSource>(blob, f.index, 4 << 20),
                               [good]() -> Result<ByteSourcePtr> { return ByteSourcePtr(good); });
  std::vector<uint8_t> all(f.data.size());
  REQUIRE(fallback.ReadAt(0, all).ok());
  CHECK(all == f.data);
  CHECK(fallback.fell_back());
  REQUIRE(fresh->ReadAt(0, all).ok());
  CHECK(all == f.data);
}

TEST_CASE("zstd checkpoint source passes a failed fetch on as it is, not as a wrong index") {
  Fixture f;
  auto counting = std::make_shared<CountingSource>(f.blob);
  counting->fail = true;
  ZstdCheckpointSource source(counting, f.index, 4 << 20);
  std::vector<uint8_t> got(4096);
  CHECK(source.ReadAt(0, got).status().code() == Code::kUnavailable);
  counting->fail = false;
  REQUIRE(source.ReadAt(0, got).ok());
  CHECK(std::equal(got.begin(), got.end(), f.data.begin()));
}

TEST_CASE("zstd checkpoint index of an empty frame has no checkpoints and reads as empty") {
  auto blob = std::make_shared<MemorySource>(
      ocifs::testing::CompressZstdFrame(std::span<const uint8_t>(), {.level = 3, .checksum = true}));
  auto bytes = BuildZstdCheckpointIndex(*blob, {});
  REQUIRE(bytes.ok());
  auto source = ZstdCheckpointSource::Open(blob, {reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()},
                                           1 << 20);
  REQUIRE(source.ok());
  CHECK((*source)->size() == 0);
  CHECK((*source)->checkpoint_count() == 0);
  std::vector<uint8_t> buf(10);
  CHECK(*(*source)->ReadAt(0, buf) == 0);
}
