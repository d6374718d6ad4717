#include "decode/gzip_tail.h"

#include <catch2/catch.hpp>
#include <random>
#include <zlib.h>

#include "base/memory_source.h"
#include "testing/layer_test_data.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// Every exact byte the tail serves is the layer's; returns the bytes served.
uint64_t CheckServed(const GzipTail& tail, const std::vector<uint8_t>& layer) {
  uint64_t served = 0;
  std::vector<uint8_t> buf(4096);
  for (uint64_t at = tail.start(); at < tail.total(); at += buf.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), tail.total() - at));
    if (!tail.Copy(at, std::span(buf).first(n))) continue;
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n),
                       layer.begin() + static_cast<ptrdiff_t>(at)));
    served += n;
  }
  return served;
}

}  // namespace

TEST_CASE("GzipTail decodes a layer's end from a stored block on, places it, and serves its exact bytes") {
  // Layer-like data (random, text, zeros), then random data at the end (deflate stores it),
  // then text again after it: its matches reach back past the boundary into unknown bytes.
  std::vector<uint8_t> disk = MakeLayerData(3 << 20, 7);
  const std::vector<uint8_t> random = IncompressibleBytes(1 << 20, 8);
  disk.insert(disk.end(), random.begin(), random.end());
  const std::vector<uint8_t> text = MakeTextData(300 << 10, 9);
  disk.insert(disk.end(), text.begin(), text.end());
  disk.resize(disk.size() + 777, 'x');
  const TarLike tar = MakeTar(disk);
  const std::vector<uint8_t> gz = GzipMember(tar.bytes);
  REQUIRE(!gz.empty());
  MemorySource blob(gz);

  auto tail = GzipTail::Decode(blob, tar.data_end, 1 << 20);
  INFO(tail.status().ToString());
  REQUIRE(tail.ok());
  CHECK((*tail)->total() == tar.bytes.size());
  CHECK((*tail)->start() < tar.data_end - 300000);  // reaches back into the random data
  const uint64_t served = CheckServed(**tail, tar.bytes);
  CHECK(served > 300000);
  CHECK(served + (*tail)->unknown_bytes() >= (*tail)->total() - (*tail)->start() - 4096 * 2);
  // The disk's last bytes, as a boot's read of its backup GPT header asks them.
  std::vector<uint8_t> last(512);
  const uint64_t disk_end = 1024 + disk.size();
  if ((*tail)->Copy(disk_end - 512, last)) {
    CHECK(std::equal(last.begin(), last.end(), tar.bytes.begin() + static_cast<ptrdiff_t>(disk_end - 512)));
  }
  // Outside the tail: not served.
  CHECK_FALSE((*tail)->Copy((*tail)->start() - 1, std::span(last).first(2)));
  CHECK_FALSE((*tail)->Copy((*tail)->total() - 1, std::span(last).first(2)));
}

// A gzip member of `parts`, each deflated at its level; a level 0 part is
// stored in blocks of at most `stored` bytes. Matches of a later part reach
// back into earlier ones (one stream, one window).
std::vector<uint8_t> GzipParts(const std::vector<std::pair<std::vector<uint8_t>, int>>& parts, size_t stored) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(1 << 26);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  for (size_t k = 0; k < parts.size(); ++k) {
    REQUIRE(deflateParams(&z, parts[k].second, Z_DEFAULT_STRATEGY) == Z_OK);
    const std::vector<uint8_t>& data = parts[k].first;
    const size_t step = parts[k].second == 0 ? stored : data.size();
    for (size_t at = 0; at < data.size(); at += step) {
      z.next_in = const_cast<Bytef*>(data.data() + at);
      z.avail_in = static_cast<uInt>(std::min(step, data.size() - at));
      REQUIRE(deflate(&z, parts[k].second == 0 ? Z_BLOCK : Z_NO_FLUSH) == Z_OK);
    }
  }
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST_CASE("GzipTail marks bytes that depend on the window before its boundary unknown and never serves them") {
  // Text, then random bytes stored in 8 KiB blocks (the boundary), then the same text
  // again: its matches reach back past the boundary (unknown), its new words do not.
  const std::vector<uint8_t> text = MakeTextData(12 << 10, 31);
  const std::vector<uint8_t> random = IncompressibleBytes(16 << 10, 32);
  std::vector<uint8_t> again = text;
  const std::vector<uint8_t> fresh = IncompressibleBytes(3000, 33);
  again.insert(again.begin() + 5000, fresh.begin(), fresh.end());
  std::vector<uint8_t> layer(1024, 'h');
  const std::vector<uint8_t> head = MakeLayerData(1 << 20, 34);
  layer.insert(layer.end(), head.begin(), head.end());
  layer.insert(layer.end(), text.begin(), text.end());
  layer.insert(layer.end(), random.begin(), random.end());
  layer.insert(layer.end(), again.begin(), again.end());
  layer.resize((layer.size() + 511) / 512 * 512, 0);
  TarLike tar;
  tar.data_end = layer.size();
  layer.resize(layer.size() + 1024, 0);
  tar.bytes = layer;
  const auto p1 = static_cast<ptrdiff_t>(1024 + head.size() + text.size());
  const auto p2 = p1 + static_cast<ptrdiff_t>(random.size());
  const std::vector<uint8_t> gz = GzipParts({{std::vector<uint8_t>(layer.begin(), layer.begin() + p1), 6},
                                             {random, 0},
                                             {std::vector<uint8_t>(layer.begin() + p2, layer.end()), 6}},
                                            8192);
  MemorySource blob(gz);
  auto tail = GzipTail::Decode(blob, tar.data_end, 64 << 10);
  INFO(tail.status().ToString());
  REQUIRE(tail.ok());
  CHECK((*tail)->total() == tar.bytes.size());
  CHECK((*tail)->unknown_bytes() > 0);
  const uint64_t served = CheckServed(**tail, tar.bytes);
  CHECK(served >= 8192);  // the stored bytes after the boundary, at least
  // The new random bytes inside the repeated text are exact; the text's copies of the
  // first text (before the boundary) are not served.
  std::vector<uint8_t> buf(2000);
  REQUIRE((*tail)->Copy(static_cast<uint64_t>(p2) + 5500, buf));
  CHECK(std::equal(buf.begin(), buf.end(), layer.begin() + p2 + 5500));
  CHECK_FALSE((*tail)->Copy(static_cast<uint64_t>(p2) + 100, buf));
}

TEST_CASE("GzipTail finds no tail where it cannot place one, and says why") {
  const std::vector<uint8_t> disk = IncompressibleBytes(2 << 20, 11);
  const TarLike tar = MakeTar(disk);
  const std::vector<uint8_t> gz = GzipMember(tar.bytes);
  MemorySource blob(gz);
  SECTION("the tar says its last entry ends elsewhere") {
    for (uint64_t wrong : {tar.data_end - 512, tar.data_end + 20480, tar.data_end - (uint64_t{1} << 20)}) {
      auto tail = GzipTail::Decode(blob, wrong, 1 << 20);
      CHECK(tail.status().code() == Code::kNotFound);
    }
  }
  SECTION("the disk is not the last entry: bytes after its data are no archive end") {
    std::vector<uint8_t> more = tar.bytes;
    more.resize(tar.data_end);
    const std::vector<uint8_t> other = IncompressibleBytes(4096, 12);
    more.insert(more.end(), other.begin(), other.end());
    more.resize(more.size() + 1024 + 512, 0);
    const std::vector<uint8_t> gz2 = GzipMember(more);
    MemorySource blob2(gz2);
    auto tail = GzipTail::Decode(blob2, tar.data_end, 1 << 20);
    CHECK(tail.status().code() == Code::kNotFound);
  }
  SECTION("text only: no stored blocks") {
    const TarLike text = MakeTar(MakeTextData(2 << 20, 13));
    const std::vector<uint8_t> gz3 = GzipMember(text.bytes);
    MemorySource blob3(gz3);
    auto tail = GzipTail::Decode(blob3, text.data_end, 1 << 20);
    CHECK(tail.status().code() == Code::kNotFound);
    CHECK(tail.status().message().find("no stored blocks") != std::string::npos);
  }
  SECTION("two members: the trailer's size is the last member's") {
    std::vector<uint8_t> first(tar.bytes.begin(), tar.bytes.begin() + (1 << 20));
    std::vector<uint8_t> second(tar.bytes.begin() + (1 << 20), tar.bytes.end());
    std::vector<uint8_t> two = GzipMember(first);
    const std::vector<uint8_t> gz2 = GzipMember(second);
    two.insert(two.end(), gz2.begin(), gz2.end());
    MemorySource blob2(two);
    auto tail = GzipTail::Decode(blob2, tar.data_end, 1 << 20);
    CHECK(tail.status().code() == Code::kNotFound);
  }
}

TEST_CASE("GzipTail over bit flips and truncations never crashes and never places a tail wrongly") {
  std::vector<uint8_t> disk = MakeLayerData(1 << 20, 21);
  const std::vector<uint8_t> random = IncompressibleBytes(600 << 10, 22);
  disk.insert(disk.end(), random.begin(), random.end());
  const TarLike tar = MakeTar(disk);
  const std::vector<uint8_t> gz = GzipMember(tar.bytes);
  const size_t window = 300 << 10;
  const std::vector<uint8_t> good(gz.end() - static_cast<ptrdiff_t>(window), gz.end());
  std::mt19937 rng(23);
  int placed = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<uint8_t> bytes = good;
    if (i % 4 == 0) {
      bytes.erase(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(rng() % bytes.size()));
    } else {
      // Flips outside the stored data (a stored block's bytes are copied as they are).
      for (int f = 0; f < 3; ++f) bytes[rng() % bytes.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    auto tail = GzipTail::DecodeBytes(bytes, gz.size(), tar.data_end);
    if (!tail.ok()) {
      CHECK(tail.status().code() == Code::kNotFound);
      continue;
    }
    ++placed;
    CHECK((*tail)->total() == tar.bytes.size());
  }
  CHECK(placed > 0);  // truncations past the boundary and flips in unused bytes still place it
}
