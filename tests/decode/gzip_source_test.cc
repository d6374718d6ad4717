#include "decode/gzip_source.h"

#include <zlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "base/all_zero.h"
#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/gzip_index.h"
#include "testing/concurrent_reads.h"
#include "testing/counting_source.h"
#include "testing/gated_source.h"
#include "testing/gzip_index_tamper.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::ConcurrentReadMismatches;
using ocifs::testing::CountingSource;
using ocifs::testing::GatedSource;

namespace {

std::vector<uint8_t> MakeData(size_t size, uint32_t seed) { return ocifs::testing::MakeLayerData(size, seed); }

std::vector<uint8_t> Gzip(std::span<const uint8_t> data, int level = 6) {
  std::vector<uint8_t> gz = ocifs::testing::GzipMember(data, level);
  REQUIRE_FALSE(gz.empty());
  return gz;
}

std::shared_ptr<GzipSource> OpenGzip(ByteSourcePtr blob, DecoderOptions options = {}) {
  auto source = GzipSource::Open(std::move(blob), options);
  REQUIRE(source.ok());
  return *source;
}

void CheckRandomReads(const ByteSource& source, const std::vector<uint8_t>& data, int reads, uint32_t seed,
                      size_t max_len = 300000) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf;
  for (int i = 0; i < reads; ++i) {
    uint64_t offset = rng() % (data.size() + 1000);
    buf.assign(1 + rng() % max_len, 0xEE);
    auto n = source.ReadAt(offset, buf);
    REQUIRE(n.ok());
    size_t expect = offset >= data.size() ? 0 : std::min<size_t>(buf.size(), data.size() - offset);
    REQUIRE(*n == expect);
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(expect),
                       data.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(offset, data.size()))));
  }
}

std::filesystem::path GzipTempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ocifs-decode-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("gzip reads at many random offsets across checkpoints equal the original") {
  auto data = MakeData(6 << 20, 1);
  auto blob = std::make_shared<MemorySource>(Gzip(data), "layer-a");
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  auto gz = OpenGzip(blob, options);
  CHECK(gz->Describe() == "gzip(layer-a)");
  CheckRandomReads(*gz, data, 150, 2);
  REQUIRE(gz->WaitUntilIndexed().ok());
  CHECK(gz->size() == data.size());
  CHECK(gz->checkpoint_count() >= 12);  // ~one per 256 KiB, at block boundaries
  CheckRandomReads(*gz, data, 150, 3);
}

TEST_CASE("gzip checkpoints stay near max_checkpoints however large the layer, and reads stay right") {
  auto data = MakeData(6 << 20, 5);
  auto compressed = Gzip(data);
  auto blob = std::make_shared<MemorySource>(compressed, "layer-b");
  DecoderOptions options;
  options.checkpoint_spacing = 64 << 10;  // would make ~96 checkpoints
  options.max_checkpoints = 8;
  auto gz = OpenGzip(blob, options);
  REQUIRE(gz->WaitUntilIndexed().ok());
  const uint64_t spacing = (compressed.size() + 7) / 8;
  // One per `spacing` of output, at block boundaries: about data / spacing of them.
  CHECK(gz->checkpoint_count() <= data.size() / spacing + 2);
  CHECK(gz->checkpoint_count() >= 4);
  CheckRandomReads(*gz, data, 100, 6);
}

TEST_CASE("gzip size is unknown until the first pass completes") {
  auto data = MakeData(2 << 20, 4);
  auto gated = std::make_shared<GatedSource>(std::make_shared<MemorySource>(Gzip(data)), 0);
  DecoderOptions options;
  auto gz = OpenGzip(gated, options);
  CHECK(gz->size() == ByteSource::kUnknownSize);
  gated->Open();
  REQUIRE(gz->WaitUntilIndexed().ok());
  CHECK(gz->size() == data.size());
}

TEST_CASE("gzip reads ahead of the first pass wait for it and then succeed") {
  auto data = MakeData(8 << 20, 5);
  auto compressed = Gzip(data);
  auto gated = std::make_shared<GatedSource>(std::make_shared<MemorySource>(compressed), 0);
  DecoderOptions options;
  options.checkpoint_spacing = 512 << 10;
  auto gz = OpenGzip(gated, options);
  std::atomic<bool> finished{false};
  std::vector<uint8_t> buf(100000);
  Result<size_t> n = size_t{0};
  std::thread reader([&] {
    n = gz->ReadAt(data.size() - 50000, buf);
    finished = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK_FALSE(finished.load());
  gated->Open();
  reader.join();
  REQUIRE(n.ok());
  REQUIRE(*n == 50000);
  CHECK(std::equal(buf.begin(), buf.begin() + 50000, data.end() - 50000));
}

namespace {

// Counts the bytes it returns, taking `delay` per read: a slow registry.
class SlowSource final : public ByteSource {
 public:
  SlowSource(ByteSourcePtr inner, std::chrono::milliseconds delay) : inner_(std::move(inner)), delay_(delay) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    std::this_thread::sleep_for(delay_);
    auto n = inner_->ReadAt(offset, buf);
    if (n.ok()) returned += *n;
    return n;
  }
  mutable std::atomic<uint64_t> returned{0};

 private:
  ByteSourcePtr inner_;
  std::chrono::milliseconds delay_;
};

}  // namespace

TEST_CASE("a reader following the first pass reads the span being produced from it, not inflating it again") {
  // Long zero runs make spans of several MiB; a reader right behind the frontier
  // would otherwise inflate its span from the checkpoint once per read.
  auto data = MakeData(12 << 20, 31);
  for (size_t at = 2 << 20; at < data.size(); at += 4 << 20) std::fill_n(data.begin() + static_cast<long>(at), 1 << 20, 0);
  auto compressed = Gzip(data);
  auto slow = std::make_shared<SlowSource>(std::make_shared<MemorySource>(compressed), std::chrono::milliseconds(3));
  DecoderOptions options;
  options.checkpoint_spacing = 1 << 20;
  // Room for every span: the pass reads this blob in one 4 MiB piece and then
  // only inflates, so it may end before the reader gets far (a warm heap, a
  // busy machine); the spans it closed must then come from the cache, not be
  // evicted and inflated again.
  options.segment_cache_bytes = 64 << 20;
  auto gz = OpenGzip(slow, options);
  std::vector<uint8_t> got(data.size()), buf(64 << 10);
  for (uint64_t at = 0; at < data.size(); at += buf.size()) {
    auto n = gz->ReadAt(at, buf);

    REQUIRE(n.ok());
    std::copy_n(buf.begin(), *n, got.begin() + static_cast<long>(at));
  }
  CHECK(got == data);
  REQUIRE(gz->WaitUntilIndexed().ok());
  // The pass's own reads, and little else (was several times the blob).
  CHECK(slow->returned.load() < compressed.size() + compressed.size() / 4);
}

namespace {

// A store that counts the bytes reads copy out of it.
class CountingStore final : public DecodedChunkStore {
 public:
  explicit CountingStore(std::shared_ptr<DecodedChunkStore> inner) : inner_(std::move(inner)) {}
  uint32_t chunk_size() const override { return inner_->chunk_size(); }
  Result<bool> Get(uint64_t index, std::span<uint8_t> out) const override {
    copied += out.size();
    return inner_->Get(index, out);
  }
  Result<bool> GetPart(uint64_t index, size_t length, size_t offset, std::span<uint8_t> out) const override {
    copied += out.size();
    return inner_->GetPart(index, length, offset, out);
  }
  Status Put(uint64_t index, std::span<const uint8_t> data) const override { return inner_->Put(index, data); }
  bool Contains(uint64_t index) const override { return inner_->Contains(index); }
  mutable std::atomic<uint64_t> copied{0};

 private:
  std::shared_ptr<DecodedChunkStore> inner_;
};

}  // namespace

TEST_CASE("reads behind the first pass copy what it kept instead of inflating; without a store they inflate") {
  auto data = MakeData(8 << 20, 33);
  auto compressed = Gzip(data);
  for (bool keep : {true, false}) {
    auto counted = std::make_shared<testing::CountingSource>(std::make_shared<MemorySource>(compressed));
    DecoderOptions options;
    options.checkpoint_spacing = 1 << 20;
    options.segment_cache_bytes = 1 << 20;  // one span: reads all over would inflate again
    auto store = std::make_shared<CountingStore>(MakeMemoryDecodedStore(256 << 10));
    options.decoded_store = store;
    options.keep_pass_output = keep;
    auto gz = OpenGzip(counted, options);
    REQUIRE(gz->WaitUntilIndexed().ok());
    const uint64_t after_pass = counted->returned.load();
    const uint64_t copied_in_pass = store->copied.load();
    std::mt19937 rng(5);
    std::vector<uint8_t> buf(40000);
    for (int i = 0; i < 200; ++i) {
      const uint64_t at = rng() % (data.size() - buf.size());
      auto n = gz->ReadAt(at, buf);
      REQUIRE(n.ok());
      REQUIRE(*n == buf.size());
      REQUIRE(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<long>(at)));
    }
    if (keep) {
      CHECK(counted->returned.load() == after_pass);  // every read a copy of kept chunks
      // ... of its own bytes only (less its known zeros), not of the whole spans around them.
      CHECK(store->copied.load() - copied_in_pass <= 200 * buf.size());
    } else {
      CHECK(counted->returned.load() > after_pass + compressed.size());  // inflated from checkpoints
    }
  }
}

TEST_CASE("spans of zeros larger than the segment cache are read as zeros, not inflated per read") {
  // A raw disk's empty space: one deflate block of zeros spans megabytes.
  std::vector<uint8_t> data = MakeData(2 << 20, 41);
  const uint64_t zeros_from = data.size();
  data.resize(data.size() + (24 << 20), 0);
  const uint64_t zeros_to = data.size();
  auto tail = MakeData(2 << 20, 42);
  data.insert(data.end(), tail.begin(), tail.end());
  auto compressed = Gzip(data);
  auto dir = GzipTempDir("zero-spans");
  DecoderOptions options;
  options.checkpoint_spacing = 1 << 20;
  options.segment_cache_bytes = 1 << 20;  // smaller than a span of zeros
  options.index_path = (dir / "idx").string();
  auto read_zeros = [&](const ByteSource& gz) {
    std::vector<uint8_t> buf(64 << 10);
    for (uint64_t at = (2 << 20) + 4096; at + buf.size() < (26 << 20); at += buf.size()) {
      auto n = gz.ReadAt(at, buf);
      REQUIRE(n.ok());
      REQUIRE(*n == buf.size());
      REQUIRE(AllZero(buf));
    }
  };
  // The 24 MiB run is one hole (its 4 KiB blocks: MakeData's own zero runs may extend it).
  auto check_hole = [&](const ByteSource& gz) {
    auto hole = gz.ExtentAt(zeros_from + 4096);
    REQUIRE(hole.ok());
    CHECK(hole->hole);
    CHECK(hole->offset + hole->length >= zeros_to - 4096);
    CHECK(AllZero(std::span(data).subspan(hole->offset, hole->length)));
    auto data_at = gz.ExtentAt(10);
    REQUIRE(data_at.ok());
    CHECK_FALSE(data_at->hole);
    // Every hole reported anywhere is zeros.
    for (uint64_t pos = 0; pos < data.size();) {
      auto e = gz.ExtentAt(pos);
      REQUIRE(e.ok());
      REQUIRE(e->length > 0);
      if (e->hole) REQUIRE(AllZero(std::span(data).subspan(e->offset, e->length)));
      pos = e->offset + e->length;
    }
  };
  {
    auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
    auto gz = OpenGzip(counted, options);
    REQUIRE(gz->WaitUntilIndexed().ok());
    const int after_pass = counted->reads;
    read_zeros(*gz);  // the pass marked them
    CHECK(counted->reads == after_pass);
    check_hole(*gz);
    CheckRandomReads(*gz, data, 30, 43);
  }
  {
    // The next open loads the index with its zero runs: reading them inflates nothing.
    auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
    auto gz = OpenGzip(counted, options);
    REQUIRE(gz->loaded_from_file());
    const int at_open = counted->reads;
    check_hole(*gz);
    read_zeros(*gz);
    CHECK(counted->reads == at_open);
    CheckRandomReads(*gz, data, 30, 44);
  }
  // An index of version 1 (no zero runs): each span of zeros is inflated once, by its first read.
  auto saved = GzipIndex::Load(options.index_path);
  REQUIRE(saved.ok());
  REQUIRE(saved->zero_runs_known);
  REQUIRE_FALSE(saved->zero_runs.empty());
  {
    GzipIndex v1 = std::move(*saved);  // without zero runs and checksums, it is written as version 1
    v1.zero_runs_known = false;
    v1.block_size = 0;
    v1.block_crcs.clear();
    REQUIRE(v1.Save(options.index_path).ok());
    std::vector<uint8_t> head(12);
    std::ifstream(options.index_path, std::ios::binary).read(reinterpret_cast<char*>(head.data()), 12);
    REQUIRE(head[8] == 1);
  }
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
  auto gz = OpenGzip(counted, options);
  REQUIRE(gz->loaded_from_file());
  const int at_open = counted->reads;
  auto unknown = gz->ExtentAt(zeros_from + 4096);  // not learnt yet: reported as data, never a wrong hole
  REQUIRE(unknown.ok());
  CHECK_FALSE(unknown->hole);
  read_zeros(*gz);
  const int spans = counted->reads - at_open;
  CHECK(spans > 0);
  CHECK(spans <= 12);  // 24 MiB of zeros in deflate blocks of ~4 MiB: one inflate each, not one per read (~380)
  read_zeros(*gz);
  CHECK(counted->reads - at_open == spans);
  auto learnt = gz->ExtentAt(zeros_from + (1 << 20));
  REQUIRE(learnt.ok());
  CHECK(learnt->hole);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gzip with several members, one of them empty, reads as one stream") {
  std::vector<uint8_t> data, blob;
  for (uint32_t i = 0; i < 5; ++i) {
    auto part = i == 2 ? std::vector<uint8_t>{} : MakeData((1 << 20) + i * 12345, 10 + i);
    auto gz = Gzip(part, i % 2 ? 1 : 9);
    data.insert(data.end(), part.begin(), part.end());
    blob.insert(blob.end(), gz.begin(), gz.end());
  }
  DecoderOptions options;
  options.checkpoint_spacing = 300 << 10;
  auto gz = OpenGzip(std::make_shared<MemorySource>(blob), options);
  REQUIRE(gz->WaitUntilIndexed().ok());
  CHECK(gz->size() == data.size());
  CheckRandomReads(*gz, data, 200, 11);
}

TEST_CASE("gzip from pigz and from concatenated gzip files decodes") {
  if (std::system("command -v pigz >/dev/null 2>&1 && command -v gzip >/dev/null 2>&1") != 0) {
    WARN("pigz or gzip not installed; skipped");
    return;
  }
  auto dir = GzipTempDir("pigz");
  auto data = MakeData(5 << 20, 12);
  std::ofstream((dir / "a").string(), std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  std::string d = dir.string();
  REQUIRE(std::system(("pigz -b 256 -p 2 -c " + d + "/a > " + d + "/a.gz && gzip -c " + d + "/a > " + d +
                       "/b.gz && cat " + d + "/a.gz " + d + "/b.gz > " + d + "/ab.gz")
                          .c_str()) == 0);
  auto read_file = [](const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
  };
  DecoderOptions options;
  options.checkpoint_spacing = 512 << 10;
  auto one = OpenGzip(std::make_shared<MemorySource>(read_file(dir / "a.gz")), options);
  CheckRandomReads(*one, data, 60, 13);
  std::vector<uint8_t> twice = data;
  twice.insert(twice.end(), data.begin(), data.end());
  auto two = OpenGzip(std::make_shared<MemorySource>(read_file(dir / "ab.gz")), options);
  REQUIRE(two->WaitUntilIndexed().ok());
  CHECK(two->size() == twice.size());
  CheckRandomReads(*two, twice, 100, 14);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a saved gzip index gives random access on the next open without a pass") {
  auto dir = GzipTempDir("index");
  auto data = MakeData(8 << 20, 20);
  auto compressed = Gzip(data);
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  options.index_path = (dir / "layer.gzi").string();
  {
    auto gz = OpenGzip(std::make_shared<MemorySource>(compressed), options);
    REQUIRE(gz->WaitUntilIndexed().ok());
    CHECK_FALSE(gz->loaded_from_file());
  }
  REQUIRE(std::filesystem::exists(options.index_path));
  auto saved = GzipIndex::Load(options.index_path);
  REQUIRE(saved.ok());
  // Windows are stored compressed: well under 32 KiB each for this data (a third random).
  CHECK(std::filesystem::file_size(options.index_path) < saved->checkpoints.size() * 32768 * 3 / 4);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
  auto gz = OpenGzip(counted, options);
  CHECK(gz->loaded_from_file());
  CHECK(gz->size() == data.size());  // known at once
  std::vector<uint8_t> buf(4096);
  uint64_t offset = data.size() / 2 + 777;
  auto n = gz->ReadAt(offset, buf);
  REQUIRE(n.ok());
  REQUIRE(*n == buf.size());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(offset)));
  INFO("compressed bytes read: " << counted->returned.load() << " of " << compressed.size());
  CHECK(counted->returned.load() < compressed.size() / 8);
  CheckRandomReads(*gz, data, 50, 21);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a corrupted gzip index file is ignored and rebuilt") {
  auto dir = GzipTempDir("badindex");
  auto data = MakeData(3 << 20, 30);
  auto compressed = Gzip(data);
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  options.index_path = (dir / "layer.gzi").string();
  REQUIRE(OpenGzip(std::make_shared<MemorySource>(compressed), options)->WaitUntilIndexed().ok());
  {
    std::fstream f(options.index_path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  REQUIRE_FALSE(GzipIndex::Load(options.index_path).ok());
  auto gz = OpenGzip(std::make_shared<MemorySource>(compressed), options);
  CHECK_FALSE(gz->loaded_from_file());
  REQUIRE(gz->WaitUntilIndexed().ok());
  CheckRandomReads(*gz, data, 40, 31);
  REQUIRE(GzipIndex::Load(options.index_path).ok());  // rewritten
  std::filesystem::remove_all(dir);
}

TEST_CASE("a gzip index built for another blob is ignored") {
  auto dir = GzipTempDir("otherindex");
  auto data_a = MakeData(1 << 20, 40), data_b = MakeData(1 << 20, 41);
  DecoderOptions options;
  options.index_path = (dir / "layer.gzi").string();
  REQUIRE(OpenGzip(std::make_shared<MemorySource>(Gzip(data_a)), options)->WaitUntilIndexed().ok());
  auto gz = OpenGzip(std::make_shared<MemorySource>(Gzip(data_b)), options);
  CHECK_FALSE(gz->loaded_from_file());
  CheckRandomReads(*gz, data_b, 20, 42);
  REQUIRE(gz->WaitUntilIndexed().ok());  // its pass writes the new index into dir
  std::filesystem::remove_all(dir);
}

TEST_CASE("truncated gzip fails with kCorrupt naming the layer and the compressed offset") {
  auto data = MakeData(2 << 20, 50);
  auto compressed = Gzip(data);
  compressed.resize(compressed.size() / 2);
  auto gz = OpenGzip(std::make_shared<MemorySource>(compressed, "layer-t"));
  Status s = gz->WaitUntilIndexed();
  REQUIRE(s.code() == Code::kCorrupt);
  CHECK(s.message().find("gzip data of layer-t corrupt at compressed offset") != std::string::npos);
  std::vector<uint8_t> buf(10);
  auto n = gz->ReadAt(0, buf);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == Code::kCorrupt);
}

TEST_CASE("flipped bytes in gzip data or its trailer give kCorrupt, never wrong bytes") {
  auto data = MakeData(2 << 20, 60);
  auto good = Gzip(data);
  std::mt19937 rng(61);
  std::vector<size_t> positions = {good.size() - 8, good.size() - 3, good.size() / 2, 30};
  for (int i = 0; i < 6; ++i) positions.push_back(20 + rng() % (good.size() - 30));
  for (size_t pos : positions) {
    auto bad = good;
    bad[pos] ^= 0x10;
    auto gz = OpenGzip(std::make_shared<MemorySource>(bad));
    Status s = gz->WaitUntilIndexed();
    INFO("flipped byte " << pos);
    REQUIRE(s.code() == Code::kCorrupt);
    std::vector<uint8_t> buf(data.size());
    REQUIRE_FALSE(gz->ReadAt(0, buf).ok());
  }
}

TEST_CASE("an empty gzip member decodes to zero bytes; an empty blob is corrupt") {
  auto gz = OpenGzip(std::make_shared<MemorySource>(Gzip({})));
  REQUIRE(gz->WaitUntilIndexed().ok());
  CHECK(gz->size() == 0);
  std::vector<uint8_t> buf(10);
  auto n = gz->ReadAt(0, buf);
  REQUIRE(n.ok());
  CHECK(*n == 0);
  auto nothing = OpenGzip(std::make_shared<MemorySource>(std::vector<uint8_t>{}));
  CHECK(nothing->WaitUntilIndexed().code() == Code::kCorrupt);
}

TEST_CASE("eight threads reading random gzip offsets during and after the pass see the original") {
  auto data = MakeData(8 << 20, 70);
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  options.segment_cache_bytes = 1 << 20;  // small, so threads decompress a lot
  auto gz = OpenGzip(std::make_shared<MemorySource>(Gzip(data)), options);
  CHECK(ConcurrentReadMismatches(*gz, data, 8, 60, 100) == 0);
}

TEST_CASE("destroying a gzip source stops its pass promptly") {
  // Incompressible data stored in 4 MiB range reads of 100 ms each: a whole
  // pass takes over a second.
  class SlowSource final : public ByteSource {
   public:
    explicit SlowSource(std::vector<uint8_t> b) : inner_(std::move(b)) {}
    uint64_t size() const override { return inner_.size(); }
    Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      return inner_.ReadAt(offset, buf);
    }
    MemorySource inner_;
  };
  std::vector<uint8_t> data(40 << 20);
  std::mt19937 rng(80);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  auto gz = OpenGzip(std::make_shared<SlowSource>(Gzip(data, 0)));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto start = std::chrono::steady_clock::now();
  gz.reset();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::milliseconds(600));
}

TEST_CASE("a closed span is inflated whole unless it outgrows the segment cache and its zeros are known") {
  const uint64_t cache = 8 << 20;
  // Closed and small enough to keep: whole, so the cache serves its other reads.
  CHECK(ChooseSpanLoad({.bytes = 1 << 20, .closed = true, .cache_bytes = cache}) == SpanLoad::kWhole);
  CHECK(ChooseSpanLoad({.bytes = cache, .closed = true, .cache_bytes = cache}) == SpanLoad::kWhole);
  // Still growing behind the pass: no end to inflate to.
  CHECK(ChooseSpanLoad({.bytes = 1 << 20, .closed = false, .cache_bytes = cache}) == SpanLoad::kToReadEnd);
  CHECK(ChooseSpanLoad({.bytes = 1 << 20, .closed = false, .cache_bytes = cache, .zeros_unknown = true}) ==
        SpanLoad::kToReadEnd);
  // Too big to keep: only up to the read's end, once its zeros are known;
  // whole once while they are not (a version 1 index).
  CHECK(ChooseSpanLoad({.bytes = cache + 1, .closed = true, .cache_bytes = cache}) == SpanLoad::kToReadEnd);
  CHECK(ChooseSpanLoad({.bytes = cache + 1, .closed = true, .cache_bytes = cache, .zeros_unknown = true}) ==
        SpanLoad::kWhole);
  CHECK(ChooseSpanLoad({.bytes = 1, .closed = true, .cache_bytes = 0}) == SpanLoad::kToReadEnd);
}

namespace {

uint32_t Crc32(std::span<const uint8_t> bytes) {
  return static_cast<uint32_t>(crc32(0, bytes.data(), static_cast<uInt>(bytes.size())));
}

// The layer's bytes [offset, offset + length) read through `gz`, or its error.
Result<std::vector<uint8_t>> ReadRange(const ByteSource& gz, uint64_t offset, size_t length) {
  std::vector<uint8_t> buf(length);
  OCIFS_ASSIGN_OR_RETURN(size_t n, gz.ReadAt(offset, buf));
  buf.resize(n);
  return buf;
}

}  // namespace

TEST_CASE("the first pass saves a version 3 index whose block checksums are the CRC-32s of the data") {
  for (const size_t size : {size_t{(3 << 20) + 12345}, size_t{4 << 20}, size_t{100}, size_t{0}}) {
    ocifs::testing::TempDir dir("ocifs-gzv3");
    const std::vector<uint8_t> data = MakeData(size, 90);
    DecoderOptions options;
    options.checkpoint_spacing = 256 << 10;
    options.index_path = dir / "layer.gzidx";
    REQUIRE(OpenGzip(std::make_shared<MemorySource>(Gzip(data)), options)->WaitUntilIndexed().ok());
    std::vector<uint8_t> head(16);
    std::ifstream(options.index_path, std::ios::binary).read(reinterpret_cast<char*>(head.data()), 16);
    CHECK(head[8] == 3);   // version
    CHECK(head[12] == 0);  // flags: the runs of zeros are given
    auto saved = GzipIndex::Load(options.index_path);
    REQUIRE(saved.ok());
    REQUIRE(saved->block_size == 65536);
    REQUIRE(saved->block_crcs.size() == (size + 65535) / 65536);
    for (size_t b = 0; b < saved->block_crcs.size(); ++b) {
      const size_t from = b * 65536, to = std::min(size, from + 65536);
      INFO("block " << b);
      REQUIRE(saved->block_crcs[b] == Crc32(std::span(data).subspan(from, to - from)));
    }
    // The next open loads it and checks its reads.
    auto loaded = OpenGzip(std::make_shared<MemorySource>(Gzip(data)), options);
    CHECK(loaded->loaded_from_file());
    CHECK(loaded->verifies_reads());
    if (size > 0) CheckRandomReads(*loaded, data, 40, 91);
  }
}

TEST_CASE("a checked read through an index with a flipped window byte is kDataLoss naming the block") {
  ocifs::testing::TempDir dir("ocifs-gzflip");
  ocifs::testing::IndexedGzipLayer layer(dir / "layer.gzidx", ocifs::testing::MakeTextData(4 << 20, 92), "layer-w");
  auto& [data, blob, options, index] = layer;
  const size_t changed = ocifs::testing::FlipWindowByteThatMatters(index, *blob, data);
  REQUIRE(changed > 0);
  REQUIRE(index.Save(options.index_path).ok());  // its file checksum recomputed: it loads
  const uint64_t span_from = index.checkpoints[changed].out;
  const uint64_t span_to =
      changed + 1 < index.checkpoints.size() ? index.checkpoints[changed + 1].out : index.decompressed_size;

  auto gz = OpenGzip(blob, options);
  REQUIRE(gz->loaded_from_file());
  REQUIRE(gz->verifies_reads());
  // Bytes well before the changed span read right.
  const uint64_t before = span_from / 65536 * 65536 - std::min<uint64_t>(65536, span_from / 65536 * 65536);
  if (before > 0) {
    auto head = ReadRange(*gz, 0, static_cast<size_t>(before));
    REQUIRE(head.ok());
    CHECK(std::equal(head->begin(), head->end(), data.begin()));
  }
  // Every read of the changed span fails (nothing is cached), with the block that did not match.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto got = ReadRange(*gz, span_from, static_cast<size_t>(span_to - span_from));
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == Code::kDataLoss);
    const std::string& m = got.status().message();
    INFO(m);
    REQUIRE(m.rfind("gzip index of layer-w is wrong: block ", 0) == 0);
    const uint64_t block = std::stoull(m.substr(std::string("gzip index of layer-w is wrong: block ").size()));
    CHECK(m.find(" at decompressed offset " + std::to_string(block * 65536) + " does not match its checksum") !=
          std::string::npos);
    CHECK(block * 65536 + 65536 > span_from);
    CHECK(block * 65536 < span_to);
  }
}

TEST_CASE("a checked index with a wrong block checksum fails the reads that inflate that block; other spans read right") {
  ocifs::testing::TempDir dir("ocifs-gzcrc");
  ocifs::testing::IndexedGzipLayer layer(dir / "layer.gzidx", MakeData(2 << 20, 93), "layer-c", 1 << 20);
  auto& [data, blob, options, index] = layer;
  const uint64_t k = ocifs::testing::DataBlock(data, 65536, 5);  // not in a run of zeros, or the index is refused
  REQUIRE(k < 30);
  index.block_crcs[k] ^= 1;
  REQUIRE(index.Save(options.index_path).ok());
  auto gz = OpenGzip(blob, options);
  REQUIRE(gz->verifies_reads());
  // A read of 10 bytes inside block k checks all of block k first.
  auto bad = ReadRange(*gz, k * 65536 + 1000, 10);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kDataLoss);
  CHECK(bad.status().message() == "gzip index of layer-c is wrong: block " + std::to_string(k) +
                                      " at decompressed offset " + std::to_string(k * 65536) +
                                      " does not match its checksum");
  // A read that ends in block k fails too: its last block is checked whole before its bytes are returned.
  CHECK(ReadRange(*gz, (k - 1) * 65536, 65537).status().code() == Code::kDataLoss);
  // Every inflate checks the whole blocks it made: reads of block k's span fail; of other spans, not.
  auto span_of = [&](uint64_t pos) {
    size_t i = 0;
    while (i + 1 < index.checkpoints.size() && index.checkpoints[i + 1].out <= pos) ++i;
    return i;
  };
  const size_t first_bad = span_of(k * 65536), last_bad = span_of(k * 65536 + 65535);
  int good_blocks = 0;
  for (uint64_t block = 0; block < 32; ++block) {
    if (span_of(block * 65536 + 65535) >= first_bad && span_of(block * 65536) <= last_bad) continue;
    auto good = ReadRange(*gz, block * 65536 + 7, 65536 - 14);
    REQUIRE(good.ok());
    CHECK(std::equal(good->begin(), good->end(), data.begin() + static_cast<ptrdiff_t>(block * 65536 + 7)));
    ++good_blocks;
  }
  CHECK(good_blocks > 0);
}

TEST_CASE("a checked index whose layer goes on past its decompressed size is wrong") {
  ocifs::testing::TempDir dir("ocifs-gzshort");
  ocifs::testing::IndexedGzipLayer layer(dir / "layer.gzidx", MakeData(3 << 20, 94), "layer-s");
  auto& [data, blob, options, index] = layer;
  // Claims the first 2 MiB are the whole layer, its checksums consistent with that.
  const uint64_t claimed = 2 << 20;
  std::erase_if(index.checkpoints, [&](const GzipCheckpoint& cp) { return cp.out >= claimed; });
  index.decompressed_size = claimed;
  index.block_crcs.resize(claimed / 65536);
  index.zero_runs.clear();
  REQUIRE(index.Save(options.index_path).ok());
  auto gz = OpenGzip(blob, options);
  REQUIRE(gz->loaded_from_file());
  CHECK(gz->size() == claimed);
  CHECK(ReadRange(*gz, 0, 1000).ok());  // far from the end: right bytes
  auto end = ReadRange(*gz, claimed - 100, 100);
  REQUIRE_FALSE(end.ok());
  CHECK(end.status().code() == Code::kDataLoss);
  CHECK(end.status().message().find("goes on past its 2097152 decompressed bytes") != std::string::npos);
}

TEST_CASE("reads through a loaded index with random bit flips return the right bytes or an error, never wrong bytes") {
  ocifs::testing::TempDir dir("ocifs-gzfuzz");
  const ocifs::testing::IndexedGzipLayer layer(dir / "layer.gzidx", MakeData(1 << 20, 95), "layer-f", 64 << 10);
  const auto& [data, blob, options, index] = layer;
  std::vector<uint8_t> good(std::filesystem::file_size(options.index_path));
  std::ifstream(options.index_path, std::ios::binary)
      .read(reinterpret_cast<char*>(good.data()), static_cast<std::streamsize>(good.size()));
  // Flips land in the fields (header, records, runs, checksums) and one time in ten in a window.
  std::vector<bool> in_window(good.size(), false);
  for (const GzipCheckpoint& cp : index.checkpoints) {
    std::fill_n(in_window.begin() + static_cast<ptrdiff_t>(cp.zwindow_offset), cp.zwindow_length, true);
  }
  std::vector<size_t> fields, windows;
  for (size_t i = 0; i + 4 < good.size(); ++i) (in_window[i] ? windows : fields).push_back(i);
  std::mt19937 rng(96);
  int loaded = 0, caught = 0;
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> bad = good;
    const std::vector<size_t>& where = i % 10 == 9 ? windows : fields;
    const size_t bit = where[rng() % where.size()] * 8 + rng() % 8;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const uint32_t crc = static_cast<uint32_t>(crc32(0, bad.data(), static_cast<uInt>(bad.size() - 4)));
    for (int k = 0; k < 4; ++k) bad[bad.size() - 4 + static_cast<size_t>(k)] = static_cast<uint8_t>(crc >> (8 * k));
    std::ofstream(options.index_path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bad.data()), static_cast<std::streamsize>(bad.size()));
    DecoderOptions no_pass = options;
    no_pass.background_pass = false;
    auto gz = OpenGzip(blob, no_pass);
    if (!gz->loaded_from_file()) continue;  // refused at open: a pass would read it
    ++loaded;
    INFO("bit " << bit);
    bool failed = false;
    for (uint64_t at = 0; at < gz->size(); at += 100000) {
      std::vector<uint8_t> buf(100000);
      auto n = gz->ReadAt(at, buf);
      if (!n.ok()) {
        REQUIRE((n.status().code() == Code::kDataLoss || n.status().code() == Code::kCorrupt));
        failed = true;
        continue;
      }
      REQUIRE(at < data.size());
      REQUIRE(*n == std::min<uint64_t>(buf.size(), gz->size() - at));
      REQUIRE(at + *n <= data.size());
      REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n), data.begin() + static_cast<ptrdiff_t>(at)));
    }
    caught += failed ? 1 : 0;
  }
  CHECK(loaded > 0);
  CHECK(caught > 0);
}

TEST_CASE("a read through an index reports the compressed bytes its output took, not its whole span") {
  auto dir = GzipTempDir("record");
  // Random bytes: deflate stores them, so compressed offsets track decompressed ones.
  std::vector<uint8_t> data(8 << 20);
  std::mt19937 rng(5);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  auto compressed = Gzip(data);
  DecoderOptions options;
  options.checkpoint_spacing = 2 << 20;  // spans of 2 MiB
  options.index_path = (dir / "layer.gzi").string();
  {
    auto gz = OpenGzip(std::make_shared<MemorySource>(compressed), options);
    REQUIRE(gz->WaitUntilIndexed().ok());
  }
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> reports;
  options.record_compressed = [&](uint64_t offset, uint64_t length) {
    std::lock_guard lock(mu);
    reports.emplace_back(offset, length);
  };
  auto gz = OpenGzip(std::make_shared<MemorySource>(compressed), options);
  REQUIRE(gz->loaded_from_file());
  REQUIRE(reports.size() == 1);  // the start of the reports
  CHECK(reports[0].second == 0);
  // Deflate codes random bytes in about 8 bits each, plus block headers: a compressed offset
  // runs up to this far past the decompressed one that makes it, over these 8 MiB.
  constexpr uint64_t kAhead = 8192;
  // 4 KiB in the middle of a 2 MiB span: inflated whole, read as the 64 KiB
  // block of output around it (to verify it), reported as its own 4 KiB of
  // output (to the 4 KiB input marks): a mount with another index widens to its own blocks.
  const uint64_t offset = 3 * (1 << 20) + 100000;
  std::vector<uint8_t> buf(4096);
  REQUIRE(gz->ReadAt(offset, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(offset)));
  REQUIRE(reports.size() == 2);
  const auto [at, length] = reports[1];
  INFO("reported [" << at << ", " << at + length << ") for output [" << offset << ", " << offset + buf.size() << ")");
  CHECK(at <= offset + kAhead);
  CHECK(at + length >= offset + buf.size());
  CHECK(length <= 2 * 4096 + 1024);
  // A second read of the same span (from the segment cache) is reported too.
  REQUIRE(gz->ReadAt(offset + 500000, buf).ok());
  REQUIRE(reports.size() == 3);
  CHECK(reports[2].first <= offset + 500000 + kAhead);
  CHECK(reports[2].first + reports[2].second >= offset + 500000 + buf.size());
  CHECK(reports[2].second <= 2 * 4096 + 1024);
  // A read in a block verified already (not widened to its 64 KiB) is reported to 4 KiB of output.
  std::vector<uint8_t> small(100);
  REQUIRE(gz->ReadAt(offset + 8192, small).ok());
  CHECK(std::equal(small.begin(), small.end(), data.begin() + static_cast<ptrdiff_t>(offset + 8192)));
  REQUIRE(reports.size() == 4);
  CHECK(reports[3].first <= offset + 8192 + kAhead);
  CHECK(reports[3].first + reports[3].second >= offset + 8192 + small.size());
  CHECK(reports[3].second <= 2 * 4096 + 1024);
  // A read whose 64 KiB block reaches into the next span: that span's part,
  // read only to verify the block, is reported too (a mount with this index prefetches it).
  auto index = GzipIndex::Load(options.index_path);
  REQUIRE(index.ok());
  REQUIRE(index->checkpoints.size() >= 3);
  const GzipCheckpoint& next = index->checkpoints[2];
  REQUIRE(next.out % 65536 >= 1024);  // the block holding the bytes just before it goes on past it
  reports.clear();
  REQUIRE(gz->ReadAt(next.out - 600, small).ok());
  CHECK(std::equal(small.begin(), small.end(), data.begin() + static_cast<ptrdiff_t>(next.out - 600)));
  REQUIRE(reports.size() == 2);
  std::sort(reports.begin(), reports.end());
  CHECK(reports[0].first + reports[0].second <= next.in + 16);  // the asked bytes, in the span before
  CHECK(reports[1].first >= next.in - 1);                        // the block's rest, in the next span
  CHECK(reports[1].second <= 65536 + 2 * 4096 + 1024);
  std::filesystem::remove_all(dir);
}
