#include <zlib.h>
#include <zstd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <catch2/catch.hpp>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "base/little_endian.h"
#include "base/memory_source.h"
#include "decode/compression.h"
#include "decode/decoder.h"
#include "decode/index_fallback_source.h"
#include "decode/sequential_reader.h"
#include "decode/zstd_frame_file.h"
#include "decode/zstd_frame_source.h"
#include "decode/zstd_stream_source.h"
#include "testing/concurrent_reads.h"
#include "testing/counting_source.h"
#include "testing/gated_source.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::ConcurrentReadMismatches;
using ocifs::testing::CountingSource;
using ocifs::testing::GatedSource;

namespace {

std::vector<uint8_t> ZstdMakeData(size_t size, uint32_t seed) {
  return ocifs::testing::MakeLayerData(size, seed, "zstd frame block seek table skippable chunk store ");
}

void Append32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// One frame; checksum on; content size in the header unless `unsized`.
std::vector<uint8_t> CompressOneFrame(std::span<const uint8_t> data, bool unsized = false) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()) + 64);
  size_t n;
  if (unsized) {
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    // Streaming without a pledged size leaves the content size out.
    size_t r = ZSTD_compressStream2(cctx, &ob, &in, ZSTD_e_continue);
    REQUIRE(!ZSTD_isError(r));
    r = ZSTD_compressStream2(cctx, &ob, &in, ZSTD_e_end);
    REQUIRE(r == 0);
    n = ob.pos;
  } else {
    n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
    REQUIRE(!ZSTD_isError(n));
  }
  ZSTD_freeCCtx(cctx);
  out.resize(n);
  return out;
}

struct MultiFrame {
  std::vector<uint8_t> blob;
  std::vector<uint32_t> in_sizes, out_sizes;
};

MultiFrame CompressFrames(std::span<const uint8_t> data, size_t frame) {
  MultiFrame m;
  for (size_t off = 0; off < data.size(); off += frame) {
    auto part = data.subspan(off, std::min(frame, data.size() - off));
    auto z = CompressOneFrame(part);
    m.blob.insert(m.blob.end(), z.begin(), z.end());
    m.in_sizes.push_back(static_cast<uint32_t>(z.size()));
    m.out_sizes.push_back(static_cast<uint32_t>(part.size()));
  }
  return m;
}

// Appends a seek table (zstd seekable format, no checksums).
void AppendSeekTable(MultiFrame& m) {
  std::vector<uint8_t> t;
  Append32(t, 0x184D2A5E);
  Append32(t, static_cast<uint32_t>(m.in_sizes.size() * 8 + 9));
  for (size_t i = 0; i < m.in_sizes.size(); ++i) {
    Append32(t, m.in_sizes[i]);
    Append32(t, m.out_sizes[i]);
  }
  Append32(t, static_cast<uint32_t>(m.in_sizes.size()));
  t.push_back(0);  // descriptor: no checksums
  Append32(t, 0x8F92EAB1);
  m.blob.insert(m.blob.end(), t.begin(), t.end());
}

std::vector<uint8_t> SkippableFrame(size_t payload) {
  std::vector<uint8_t> f;
  Append32(f, 0x184D2A53);
  Append32(f, static_cast<uint32_t>(payload));
  f.resize(f.size() + payload, 0xAB);
  return f;
}

// A store that forgets the chunks in `forget` (as an evicting cache would).
class ZstdForgetfulStore final : public DecodedChunkStore {
 public:
  ZstdForgetfulStore(uint32_t chunk_size, std::set<uint64_t> forget)
      : inner_(MakeMemoryDecodedStore(chunk_size)), forget_(std::move(forget)) {}
  uint32_t chunk_size() const override { return inner_->chunk_size(); }
  Result<bool> Get(uint64_t i, std::span<uint8_t> out) const override { return inner_->Get(i, out); }
  Status Put(uint64_t i, std::span<const uint8_t> data) const override {
    if (forget_.count(i) && !forgotten_once_.count(i)) {
      forgotten_once_.insert(i);  // dropped the first time only
      return Status::Ok();
    }
    return inner_->Put(i, data);
  }
  bool Contains(uint64_t i) const override { return inner_->Contains(i); }

 private:
  std::shared_ptr<DecodedChunkStore> inner_;
  std::set<uint64_t> forget_;
  mutable std::set<uint64_t> forgotten_once_;  // only touched by the one pass thread
};

ByteSourcePtr OpenZstd(ByteSourcePtr blob, DecoderOptions options = {}) {
  auto c = DetectCompression(*blob);
  REQUIRE(c.ok());
  REQUIRE(*c == Compression::kZstd);
  auto source = OpenDecoded(std::move(blob), Compression::kZstd, options);
  REQUIRE(source.ok());
  return *source;
}

void ZstdCheckRandomReads(const ByteSource& source, const std::vector<uint8_t>& data, int reads, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf;
  for (int i = 0; i < reads; ++i) {
    uint64_t offset = rng() % (data.size() + 1000);
    buf.assign(1 + rng() % 400000, 0xEE);
    auto n = source.ReadAt(offset, buf);
    REQUIRE(n.ok());
    size_t expect = offset >= data.size() ? 0 : std::min<size_t>(buf.size(), data.size() - offset);
    REQUIRE(*n == expect);
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(expect),
                       data.begin() + static_cast<ptrdiff_t>(std::min<uint64_t>(offset, data.size()))));
  }
}

}  // namespace

TEST_CASE("multi-frame zstd is read randomly, a small read touching only its frame") {
  auto data = ZstdMakeData(6 << 20, 1);
  MultiFrame m = CompressFrames(data, 256 << 10);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
  auto source = OpenZstd(counted);
  auto frames = std::dynamic_pointer_cast<const ZstdFrameSource>(source);
  REQUIRE(frames != nullptr);
  CHECK(frames->frame_count() == m.in_sizes.size());
  CHECK(source->size() == data.size());
  CHECK(source->Describe() == "zstd(counted blob)");
  counted->returned = 0;
  std::vector<uint8_t> buf(1000);
  uint64_t offset = 10 * (256 << 10) + 5000;  // inside frame 10
  auto n = source->ReadAt(offset, buf);
  REQUIRE(n.ok());
  REQUIRE(*n == buf.size());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(offset)));
  CHECK(counted->returned.load() == m.in_sizes[10]);
  ZstdCheckRandomReads(*source, data, 100, 2);
}

TEST_CASE("frames of differing sizes decoded through recycled buffers read exact, also from several threads") {
  // A segment cache of one frame's worth: nearly every read decodes into a
  // buffer an earlier, differently sized frame used (ByteBufferPool).
  auto data = ZstdMakeData(5 << 20, 7);
  MultiFrame m;
  const size_t sizes[] = {300 << 10, 1536 << 10, 64 << 10, 1100 << 10, 700 << 10};
  for (size_t off = 0, k = 0; off < data.size(); ++k) {
    const size_t n = std::min(sizes[k % 5], data.size() - off);
    auto z = CompressOneFrame(std::span<const uint8_t>(data).subspan(off, n));
    m.blob.insert(m.blob.end(), z.begin(), z.end());
    m.in_sizes.push_back(static_cast<uint32_t>(z.size()));
    m.out_sizes.push_back(static_cast<uint32_t>(n));
    off += n;
  }
  AppendSeekTable(m);
  DecoderOptions options;
  options.segment_cache_bytes = 1536 << 10;
  auto source = OpenZstd(std::make_shared<MemorySource>(m.blob, "blob"), options);
  REQUIRE(std::dynamic_pointer_cast<const ZstdFrameSource>(source) != nullptr);
  ZstdCheckRandomReads(*source, data, 200, 8);
  CHECK(ConcurrentReadMismatches(*source, data, 4, 100, 9) == 0);
}

TEST_CASE("a seekable zstd layer opened without a saved table is filled front to back, when small enough") {
  auto data = ZstdMakeData(16 << 20, 11);
  MultiFrame m = CompressFrames(data, 512 << 10);
  AppendSeekTable(m);
  REQUIRE(m.blob.size() > (2u << 20));  // more than the fill's first read: it hints the rest
  auto wait_for = [](const CountingSource& counted, uint64_t bytes) {
    for (int i = 0; i < 1000 && counted.returned.load() < bytes; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return counted.returned.load();
  };
  SECTION("fill on: the whole blob is read with no read of ours, hinted ahead, and reads stay exact") {
    auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
    DecoderOptions options;
    options.fill_frames_up_to = m.blob.size();
    options.pass_read_ahead = 1 << 20;
    auto source = OpenZstd(counted, options);
    REQUIRE(std::dynamic_pointer_cast<const ZstdFrameSource>(source) != nullptr);
    CHECK(wait_for(*counted, m.blob.size()) >= m.blob.size());
    {
      std::lock_guard lock(counted->mu);
      CHECK(!counted->prefetches.empty());  // the fill kept range requests ahead of itself
    }
    ZstdCheckRandomReads(*source, data, 50, 12);
  }
  SECTION("deferred: nothing is filled until the caller starts it") {
    auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
    std::vector<std::function<void()>> deferred;
    DecoderOptions options;
    options.fill_frames_up_to = m.blob.size();
    options.defer_fill = [&](std::function<void()> start) { deferred.push_back(std::move(start)); };
    auto source = OpenZstd(counted, options);
    REQUIRE(deferred.size() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const uint64_t at_open = counted->returned.load();
    CHECK(at_open < m.blob.size() / 4);  // the seek table only
    deferred[0]();
    CHECK(wait_for(*counted, at_open + m.blob.size()) >= at_open + m.blob.size());
  }
  SECTION("a blob larger than the bound, or a table saved by an earlier open, is not filled") {
    ocifs::testing::TempDir tmp;
    for (int open = 0; open < 2; ++open) {
      auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
      DecoderOptions options;
      options.fill_frames_up_to = open == 0 ? m.blob.size() - 1 : m.blob.size();
      options.frame_table_path = tmp.path() + "/frames";
      auto source = OpenZstd(counted, options);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      CHECK(counted->returned.load() < m.blob.size() / 4);
    }
  }
}

TEST_CASE("multi-frame zstd without a seek table walks its frames once, then opens from the saved table") {
  ocifs::testing::TempDir tmp;
  auto data = ZstdMakeData(3 << 20, 21);
  MultiFrame m = CompressFrames(data, 200000);
  DecoderOptions options;
  options.frame_table_path = tmp.path() + "/layer.zstdframes";
  auto first_blob = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
  auto first = OpenZstd(first_blob, options);
  REQUIRE(std::dynamic_pointer_cast<const ZstdFrameSource>(first) != nullptr);
  CHECK(first_blob->returned.load() >= m.blob.size() - 64 * 1024);  // the walk read it all
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
  auto second = OpenZstd(counted, options);
  auto frames = std::dynamic_pointer_cast<const ZstdFrameSource>(second);
  REQUIRE(frames != nullptr);
  CHECK(frames->frame_count() == m.in_sizes.size());
  CHECK(counted->returned.load() <= 4);  // the magic check: no walk, no seek-table read
  CHECK(second->size() == data.size());
  ZstdCheckRandomReads(*second, data, 60, 22);
  // A table for another blob (or damaged) is ignored: walked again, and replaced.
  MultiFrame other = CompressFrames(ZstdMakeData(1 << 20, 23), 100000);
  auto other_source = OpenZstd(std::make_shared<MemorySource>(other.blob, "other"), options);
  CHECK(other_source->size() == (1u << 20));
  ZstdCheckRandomReads(*other_source, ZstdMakeData(1 << 20, 23), 20, 24);
}

// The frame table of `m` (made by CompressFrames of `data`), every frame with its CRC-32.
std::vector<ZstdFrame> FramesWithCrcs(const MultiFrame& m, const std::vector<uint8_t>& data) {
  std::vector<ZstdFrame> frames;
  uint64_t in = 0, out = 0;
  for (size_t i = 0; i < m.in_sizes.size(); ++i) {
    ZstdFrame f{in, m.in_sizes[i], out, m.out_sizes[i]};
    f.crc32 = static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), data.data() + out, m.out_sizes[i]));
    frames.push_back(f);
    in += m.in_sizes[i];
    out += m.out_sizes[i];
  }
  return frames;
}

TEST_CASE("a saved frame table with CRCs is used without a walk, and every frame it decodes is checked") {
  ocifs::testing::TempDir tmp;
  auto data = ZstdMakeData(3 << 20, 31);
  MultiFrame m = CompressFrames(data, 200000);
  DecoderOptions options;
  options.frame_table_path = tmp.path() + "/layer.zstdframes";
  REQUIRE(ZstdFrameFile::Write(options.frame_table_path, m.blob.size(), FramesWithCrcs(m, data)).ok());
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
  auto source = OpenZstd(counted, options);
  CHECK(counted->returned.load() <= 4);  // the magic check: no walk, no seek-table read
  CHECK(source->size() == data.size());
  ZstdCheckRandomReads(*source, data, 60, 32);
  auto fallback = std::dynamic_pointer_cast<const IndexFallbackSource>(source);
  REQUIRE(fallback != nullptr);
  CHECK_FALSE(fallback->fell_back());
}

TEST_CASE("a saved frame table whose CRC is wrong falls back to walking the blob, reads stay exact") {
  ocifs::testing::TempDir tmp;
  auto data = ZstdMakeData(3 << 20, 33);
  MultiFrame m = CompressFrames(data, 200000);
  DecoderOptions options;
  options.frame_table_path = tmp.path() + "/layer.zstdframes";
  auto frames = FramesWithCrcs(m, data);
  *frames[4].crc32 ^= 0x10;
  REQUIRE(ZstdFrameFile::Write(options.frame_table_path, m.blob.size(), frames).ok());
  auto source = OpenZstd(std::make_shared<MemorySource>(m.blob, "blob"), options);
  // Frame 0 is right: read through the table.
  std::vector<uint8_t> buf(1000);
  REQUIRE(source->ReadAt(10, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + 10));
  auto fallback = std::dynamic_pointer_cast<const IndexFallbackSource>(source);
  REQUIRE(fallback != nullptr);
  CHECK_FALSE(fallback->fell_back());
  // Frame 4 fails its CRC: the read is served by the walked frames, exact.
  buf.assign(300000, 0);
  auto n = source->ReadAt(4 * 200000 - 1000, buf);
  REQUIRE(n.ok());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + 4 * 200000 - 1000));
  CHECK(fallback->fell_back());
  ZstdCheckRandomReads(*source, data, 40, 34);
  // The walk saved its own table (no CRCs) over the wrong one.
  auto saved = ZstdFrameFile::Read(options.frame_table_path, m.blob.size());
  REQUIRE(saved.ok());
  CHECK(saved->size() == m.in_sizes.size());
  CHECK_FALSE((*saved)[4].crc32.has_value());
}

TEST_CASE("zstd seekable format is opened from its seek table with one read at the end") {
  auto data = ZstdMakeData(5 << 20, 3);
  MultiFrame m = CompressFrames(data, 300000);
  AppendSeekTable(m);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(m.blob, "blob"));
  auto source = OpenZstd(counted);
  REQUIRE(std::dynamic_pointer_cast<const ZstdFrameSource>(source) != nullptr);
  CHECK(counted->returned.load() <= 64 * 1024 + 4 + 18);  // the magic check, the first frame's header, the tail read
  CHECK(source->size() == data.size());
  counted->returned = 0;
  std::vector<uint8_t> buf(10);
  REQUIRE(source->ReadAt(3 * 300000 + 1, buf).ok());
  CHECK(counted->returned.load() == m.in_sizes[3]);
  ZstdCheckRandomReads(*source, data, 80, 4);
}

TEST_CASE("zstd: a first frame declaring more than 32 MiB opens as a stream from its header alone") {
  // No seek table can make such a blob seekable: neither its end nor 4 MiB of block headers are read.
  std::vector<uint8_t> data(33u << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 7) >> 12);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(CompressOneFrame(data), "blob"));
  // The stream's pass may start at once: its reads (1 MiB and more) wait behind the gate
  // until the open's reads are counted.
  auto gated = std::make_shared<GatedSource>(counted, 64 << 10, 64 << 10);
  auto source = OpenZstd(gated);
  CHECK(std::dynamic_pointer_cast<const ZstdFrameSource>(source) == nullptr);
  CHECK(counted->reads.load() <= 2);
  CHECK(counted->returned.load() <= 4 + 18);  // the magic check and the frame header
  gated->Open();
  std::vector<uint8_t> buf(4096);
  REQUIRE(source->ReadAt(data.size() - buf.size(), buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), data.end() - static_cast<ptrdiff_t>(buf.size())));
}

TEST_CASE("zstd with a skippable frame in front and between frames reads correctly") {
  auto data = ZstdMakeData(3 << 20, 5);
  MultiFrame m = CompressFrames(data, 1 << 20);
  std::vector<uint8_t> blob = SkippableFrame(100);
  size_t second = m.in_sizes[0];
  blob.insert(blob.end(), m.blob.begin(), m.blob.begin() + static_cast<ptrdiff_t>(second));
  auto skip = SkippableFrame(7);
  blob.insert(blob.end(), skip.begin(), skip.end());
  blob.insert(blob.end(), m.blob.begin() + static_cast<ptrdiff_t>(second), m.blob.end());
  auto source = OpenZstd(std::make_shared<MemorySource>(blob));
  REQUIRE(std::dynamic_pointer_cast<const ZstdFrameSource>(source) != nullptr);
  ZstdCheckRandomReads(*source, data, 60, 6);
}

TEST_CASE("single-frame zstd is read randomly through the decoded chunk store") {
  auto data = ZstdMakeData(6 << 20, 7);
  DecoderOptions options;
  options.decoded_store = MakeMemoryDecodedStore(256 << 10);
  auto source = OpenZstd(std::make_shared<MemorySource>(CompressOneFrame(data)), options);
  auto stream = std::dynamic_pointer_cast<const ZstdStreamSource>(source);
  REQUIRE(stream != nullptr);
  CHECK(source->size() == data.size());  // from the frame header
  ZstdCheckRandomReads(*source, data, 100, 8);
  REQUIRE(stream->WaitUntilDecoded().ok());
  std::vector<uint8_t> chunk(256 << 10);
  auto stored = options.decoded_store->Get(5, chunk);
  REQUIRE(stored.ok());
  CHECK(*stored);
  CHECK(std::equal(chunk.begin(), chunk.end(), data.begin() + 5 * (256 << 10)));
  CHECK(stream->restart_count() == 0);
}

TEST_CASE("a single-frame zstd pass keeps the compressed bytes ahead of it hinted") {
  auto data = ZstdMakeData(16 << 20, 17);
  const auto blob = CompressOneFrame(data);
  REQUIRE(blob.size() > SequentialReader::kDefaultPiece);
  DecoderOptions options;
  options.decoded_store = MakeMemoryDecodedStore(256 << 10);
  options.pass_read_ahead = 4 << 20;  // at least a piece: every byte past the first read is hinted
  auto counted = std::make_shared<ocifs::testing::CountingSource>(std::make_shared<MemorySource>(blob));
  auto source = OpenZstd(counted, options);
  auto stream = std::dynamic_pointer_cast<const ZstdStreamSource>(source);
  REQUIRE(stream != nullptr);
  REQUIRE(stream->WaitUntilDecoded().ok());
  ZstdCheckRandomReads(*source, data, 20, 18);
  // The hints run from the end of the first read (small, alone), in order, without a gap, a window past it.
  std::lock_guard lock(counted->mu);
  REQUIRE(!counted->prefetches.empty());
  uint64_t next = SequentialReader::kFirstRead;
  for (const auto& [offset, length] : counted->prefetches) {
    CHECK(offset == next);
    next = offset + length;
  }
  CHECK(next >= std::min<uint64_t>(blob.size(), SequentialReader::kFirstRead + options.pass_read_ahead));
}

TEST_CASE("zstd without content sizes has an unknown size until its pass ends") {
  auto data = ZstdMakeData(3 << 20, 9);
  auto blob = CompressOneFrame(std::span(data).first(1 << 20), true);
  auto rest = CompressOneFrame(std::span(data).subspan(1 << 20), true);
  blob.insert(blob.end(), rest.begin(), rest.end());
  DecoderOptions options;
  options.background_pass = false;
  options.decoded_store = MakeMemoryDecodedStore(100000);
  auto source = OpenZstd(std::make_shared<MemorySource>(blob), options);
  CHECK(source->size() == ByteSource::kUnknownSize);
  ZstdCheckRandomReads(*source, data, 50, 10);  // the first read starts the pass
  auto stream = std::dynamic_pointer_cast<const ZstdStreamSource>(source);
  REQUIRE(stream->WaitUntilDecoded().ok());
  CHECK(source->size() == data.size());
}

TEST_CASE("a single-frame zstd stream reports the runs of zeros its pass saw as holes") {
  std::vector<uint8_t> data(2 << 20);
  std::mt19937 rng(13);
  for (auto& b : data) b = static_cast<uint8_t>(rng() % 255 + 1);  // never a zero: the only run is below
  std::fill(data.begin() + (256 << 10), data.begin() + (1 << 20), 0);  // 768 KiB of zeros
  DecoderOptions options;
  options.decoded_store = MakeMemoryDecodedStore(100000);  // chunks that do not line up with the run
  auto source = OpenZstd(std::make_shared<MemorySource>(CompressOneFrame(data, true)), options);
  auto stream = std::dynamic_pointer_cast<const ZstdStreamSource>(source);
  REQUIRE(stream != nullptr);
  REQUIRE(stream->WaitUntilDecoded().ok());
  auto before = source->ExtentAt(0);
  REQUIRE(before.ok());
  CHECK_FALSE(before->hole);
  CHECK(before->length == 256 << 10);
  auto hole = source->ExtentAt(300 << 10);
  REQUIRE(hole.ok());
  CHECK(hole->hole);
  CHECK(hole->offset + hole->length == 1 << 20);
  auto after = source->ExtentAt(1 << 20);
  REQUIRE(after.ok());
  CHECK_FALSE(after->hole);
  CHECK(after->offset + after->length == data.size());
  ZstdCheckRandomReads(*source, data, 30, 14);
}

TEST_CASE("a chunk missing from the store is decompressed again from the start") {
  auto data = ZstdMakeData(4 << 20, 11);
  DecoderOptions options;
  options.decoded_store = std::make_shared<ZstdForgetfulStore>(128 << 10, std::set<uint64_t>{3, 20, 31});
  options.segment_cache_bytes = 256 << 10;  // two chunks: forces store reads
  auto source = OpenZstd(std::make_shared<MemorySource>(CompressOneFrame(data)), options);
  auto stream = std::dynamic_pointer_cast<const ZstdStreamSource>(source);
  REQUIRE(stream->WaitUntilDecoded().ok());
  std::vector<uint8_t> buf(300000);
  for (uint64_t offset : {uint64_t{3} * (128 << 10) + 10, uint64_t{19} * (128 << 10), uint64_t{31} * (128 << 10)}) {
    auto n = source->ReadAt(offset, buf);
    REQUIRE(n.ok());
    size_t expect = std::min<size_t>(buf.size(), data.size() - offset);
    REQUIRE(*n == expect);
    CHECK(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(expect),
                     data.begin() + static_cast<ptrdiff_t>(offset)));
  }
  CHECK(stream->restart_count() >= 2);
  ZstdCheckRandomReads(*source, data, 40, 12);
}

TEST_CASE("eight threads reading a single-frame zstd during its pass see the original") {
  auto data = ZstdMakeData(8 << 20, 13);
  DecoderOptions options;
  options.decoded_store = MakeMemoryDecodedStore(64 << 10);
  options.segment_cache_bytes = 512 << 10;
  auto source = OpenZstd(std::make_shared<MemorySource>(CompressOneFrame(data)), options);
  CHECK(ConcurrentReadMismatches(*source, data, 8, 80, 200) == 0);
}

TEST_CASE("corrupt single-frame zstd gives kCorrupt naming the layer and offset") {
  auto data = ZstdMakeData(2 << 20, 14);
  auto good = CompressOneFrame(data);
  std::mt19937 rng(15);
  for (int i = 0; i < 6; ++i) {
    auto bad = good;
    size_t pos = 20 + rng() % (bad.size() - 20);
    bad[pos] ^= 0x22;
    INFO("flipped byte " << pos);
    auto opened = OpenDecoded(std::make_shared<MemorySource>(bad, "layer-z"), Compression::kZstd, {});
    if (!opened.ok()) {  // the header walk at open found it
      CHECK(opened.status().code() == Code::kCorrupt);
      continue;
    }
    std::vector<uint8_t> buf(data.size());
    auto n = (*opened)->ReadAt(0, buf);
    REQUIRE_FALSE(n.ok());
    CHECK(n.status().code() == Code::kCorrupt);
    CHECK(n.status().message().find("layer-z") != std::string::npos);
    CHECK(n.status().message().find("offset") != std::string::npos);
  }
}

TEST_CASE("truncated zstd and a corrupt frame of a multi-frame zstd give kCorrupt") {
  auto data = ZstdMakeData(2 << 20, 16);
  auto single = CompressOneFrame(data);
  single.resize(single.size() - 100);
  auto opened = OpenDecoded(std::make_shared<MemorySource>(single), Compression::kZstd, {});
  if (opened.ok()) {
    std::vector<uint8_t> buf(10);
    auto n = (*opened)->ReadAt(data.size() - 5, buf);
    REQUIRE_FALSE(n.ok());
    CHECK(n.status().code() == Code::kCorrupt);
  } else {
    CHECK(opened.status().code() == Code::kCorrupt);
  }
  MultiFrame m = CompressFrames(data, 256 << 10);
  AppendSeekTable(m);
  size_t frame3 = m.in_sizes[0] + m.in_sizes[1] + m.in_sizes[2];
  m.blob[frame3 + m.in_sizes[3] / 2] ^= 0x5a;
  auto source = OpenZstd(std::make_shared<MemorySource>(m.blob, "layer-m"));
  std::vector<uint8_t> buf(100);
  auto bad = source->ReadAt(3 * (256 << 10) + 7, buf);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kCorrupt);
  CHECK(bad.status().message().find("compressed offset " + std::to_string(frame3)) != std::string::npos);
  auto fine = source->ReadAt(7, buf);
  REQUIRE(fine.ok());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + 7));
}

TEST_CASE("a zstd frame header pointing past the end of the blob is corrupt at open") {
  auto data = ZstdMakeData(1 << 20, 17);
  MultiFrame m = CompressFrames(data, 256 << 10);
  m.blob.resize(m.blob.size() - 1000);
  auto opened = OpenDecoded(std::make_shared<MemorySource>(m.blob, "layer-s"), Compression::kZstd, {});
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.status().code() == Code::kCorrupt);
  CHECK(opened.status().message().find("layer-s") != std::string::npos);
}

TEST_CASE("zstd frames report the compressed bytes a read needed, not its whole frame") {
  auto data = ZstdMakeData(8 << 20, 33);
  MultiFrame m = CompressFrames(data, 4 << 20);  // two 4 MiB frames
  auto source = OpenZstd(std::make_shared<MemorySource>(m.blob, "blob"));
  auto frames = std::const_pointer_cast<ZstdFrameSource>(std::dynamic_pointer_cast<const ZstdFrameSource>(source));
  REQUIRE(frames != nullptr);
  REQUIRE(frames->frame_count() == 2);
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> reported;
  frames->RecordNeeded([&](uint64_t offset, uint64_t length) {
    std::lock_guard lock(mu);
    reported.emplace_back(offset, length);
  });
  REQUIRE(reported.size() == 1);
  CHECK(reported[0] == std::pair<uint64_t, uint64_t>(0, 0));  // the reports start
  // 4 KiB at 3 MiB into the second frame.
  const uint64_t offset = (4 << 20) + (3 << 20);
  std::vector<uint8_t> buf(4096);
  REQUIRE(frames->ReadAt(offset, buf).ok());
  CHECK(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(offset)));
  REQUIRE(reported.size() == 2);
  const auto [at, length] = reported[1];
  const uint64_t frame_in = m.in_sizes[0], frame_size = m.in_sizes[1];
  // Inside the second frame, well short of all of it: the input around 3 MiB of its output.
  CHECK(at > frame_in);
  CHECK(at + length <= frame_in + frame_size);
  CHECK(length < frame_size / 4);
  // The same read again (the frame cached) reports the same bytes.
  REQUIRE(frames->ReadAt(offset, buf).ok());
  REQUIRE(reported.size() == 3);
  CHECK(reported[2] == reported[1]);
  // Frames as spans: each frame's compressed bytes.
  const auto spans = frames->FrameSpans();
  REQUIRE(spans.size() == 2);
  CHECK(spans[0] == std::pair<uint64_t, uint64_t>(0, frame_in));
  CHECK(spans[1] == std::pair<uint64_t, uint64_t>(frame_in, frame_in + frame_size));
  ZstdCheckRandomReads(*source, data, 50, 3);
}

TEST_CASE("a zstd source's report stays within the units wholly inside the span it decoded") {
  constexpr uint64_t u = 4096;
  // A span [10000, 50000): its inner units are [12288, 49152).
  CHECK(NeededWithinSpan(10000, 50000, 10000, 50000, u) == std::pair<uint64_t, uint64_t>(12288, 49152));
  CHECK(NeededWithinSpan(20000, 30000, 10000, 50000, u) == std::pair<uint64_t, uint64_t>(20000, 30000));
  // Bytes in an edge unit only: the inner unit next to them.
  CHECK(NeededWithinSpan(10000, 11000, 10000, 50000, u) == std::pair<uint64_t, uint64_t>(12288, 12289));
  CHECK(NeededWithinSpan(49500, 50000, 10000, 50000, u) == std::pair<uint64_t, uint64_t>(49151, 49152));
  // A span with no whole unit inside, or no unit: as it is.
  CHECK(NeededWithinSpan(10000, 12000, 10000, 12000, u) == std::pair<uint64_t, uint64_t>(10000, 12000));
  CHECK(NeededWithinSpan(10000, 50000, 10000, 50000, 0) == std::pair<uint64_t, uint64_t>(10000, 50000));
}

TEST_CASE("a recording zstd frame source reads a bit-flipped blob or a shifted frame table as a plain one: an error or the right bytes") {
  // A mount recording a profile decodes frames a block at a time (the
  // buffer-less API), others in one call: either way, a damaged frame is an
  // error, never other bytes (the frames carry checksums).
  auto data = ZstdMakeData(1 << 20, 41);
  const size_t frame = 128 << 10;
  MultiFrame m = CompressFrames(data, frame);
  AppendSeekTable(m);
  DecoderOptions recording;
  recording.record_compressed = [](uint64_t, uint64_t) {};
  // Reads frame k of both sources; they agree, and bytes read are right.
  auto check_frame = [&](const std::vector<uint8_t>& blob, size_t k) {
    auto plain = OpenZstd(std::make_shared<MemorySource>(blob, "plain"));
    auto recorded = OpenZstd(std::make_shared<MemorySource>(blob, "recorded"), recording);
    std::vector<uint8_t> a(frame), b(frame);
    auto ra = plain->ReadAt(k * frame, a);
    auto rb = recorded->ReadAt(k * frame, b);
    REQUIRE(ra.ok() == rb.ok());
    if (!ra.ok()) return;
    REQUIRE(*ra == *rb);
    CHECK(std::equal(a.begin(), a.begin() + static_cast<ptrdiff_t>(*ra), data.begin() + static_cast<ptrdiff_t>(k * frame)));
    CHECK(std::equal(b.begin(), b.begin() + static_cast<ptrdiff_t>(*rb), data.begin() + static_cast<ptrdiff_t>(k * frame)));
  };
  uint64_t frames_end = 0;
  for (uint32_t n : m.in_sizes) frames_end += n;
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const size_t at = 4 + rng() % (frames_end - 4);  // the first magic stays: the blob is zstd
    INFO("bit " << (i % 8) << " of byte " << at);
    std::vector<uint8_t> blob = m.blob;
    blob[at] ^= static_cast<uint8_t>(1u << (i % 8));
    size_t k = 0;  // the frame holding byte `at`
    for (uint64_t start = 0; start + m.in_sizes[k] <= at;) start += m.in_sizes[k++];
    check_frame(blob, k);
  }
  // A frame boundary moved by a byte either way in the table (its sum kept).
  const size_t table = frames_end + 8;
  for (int shift : {-1, 1}) {
    INFO("frame 2 ends " << shift << " byte(s) off");
    std::vector<uint8_t> blob = m.blob;
    auto entry = [&](size_t k) { return blob.data() + table + 8 * k; };
    StoreLe<uint32_t>(entry(2), LoadLe<uint32_t>(entry(2)) + shift);
    StoreLe<uint32_t>(entry(3), LoadLe<uint32_t>(entry(3)) - shift);
    check_frame(blob, 2);
    check_frame(blob, 3);
  }
}
