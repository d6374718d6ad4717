#include "decode/zstd_frame_file.h"

#include <zlib.h>

#include <catch2/catch.hpp>

#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// Three frames with a skippable frame (bytes 30..39) between the first two.
std::vector<ZstdFrame> Frames() {
  return {{0, 30, 0, 1000}, {40, 25, 1000, 500}, {65, 35, 1500, 2000}};
}

bool Same(const std::vector<ZstdFrame>& a, const std::vector<ZstdFrame>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const ZstdFrame& x, const ZstdFrame& y) {
    return x.in_offset == y.in_offset && x.in_size == y.in_size && x.out_offset == y.out_offset &&
           x.out_size == y.out_size;
  });
}

}  // namespace

TEST_CASE("a zstd frame table round-trips through its file") {
  TempDir tmp;
  const std::string path = tmp.path() + "/t.zstdframes";
  REQUIRE(ZstdFrameFile::Write(path, 100, Frames()).ok());
  auto got = ZstdFrameFile::Read(path, 100);
  REQUIRE(got.ok());
  CHECK(Same(*got, Frames()));
  CHECK(ZstdFrameFile::Read(tmp.path() + "/none", 100).status().code() == Code::kNotFound);
}

TEST_CASE("a zstd frame table keeps its frames' CRCs when every frame has one") {
  auto frames = Frames();
  for (size_t i = 0; i < frames.size(); ++i) frames[i].crc32 = 0xA0000000u + static_cast<uint32_t>(i);
  auto got = ZstdFrameFile::Decode(ZstdFrameFile::Encode(100, frames), 100, "F");
  REQUIRE(got.ok());
  REQUIRE(Same(*got, frames));
  for (size_t i = 0; i < frames.size(); ++i) CHECK((*got)[i].crc32 == frames[i].crc32);
  // One frame without: none are written.
  frames[1].crc32.reset();
  got = ZstdFrameFile::Decode(ZstdFrameFile::Encode(100, frames), 100, "F");
  REQUIRE(got.ok());
  for (const ZstdFrame& f : *got) CHECK_FALSE(f.crc32.has_value());
}

TEST_CASE("a version 1 zstd frame table file is still read") {
  // Version 1: no flags word, no CRCs (what earlier versions of oci-fs saved).
  std::string v1 = "OCIFSZFT";
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) v1.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put(1, 4);
  put(2, 4);
  put(100, 8);
  for (const ZstdFrame& f : {ZstdFrame{0, 30, 0, 1000}, ZstdFrame{40, 25, 1000, 500}}) {
    put(f.in_offset, 8);
    put(f.in_size, 8);
    put(f.out_offset, 8);
    put(f.out_size, 8);
  }
  put(crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(v1.data()), static_cast<uInt>(v1.size())), 4);
  auto got = ZstdFrameFile::Decode(v1, 100, "F");
  REQUIRE(got.ok());
  REQUIRE(got->size() == 2);
  CHECK((*got)[1].out_offset == 1000);
  CHECK_FALSE((*got)[1].crc32.has_value());
}

TEST_CASE("a zstd frame table file that is damaged, of another version or of another blob is corrupt") {
  const std::string good = ZstdFrameFile::Encode(100, Frames());
  auto check = [](const std::string& bytes, uint64_t blob_size, const std::string& why) {
    auto r = ZstdFrameFile::Decode(bytes, blob_size, "F");
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK(r.status().message().find("zstd frame table F: " + why) != std::string::npos);
  };
  check("", 100, "not a frame table");
  check("OCIFSTAR" + good.substr(8), 100, "not a frame table");
  std::string flipped = good;
  flipped[30] ^= 1;
  check(flipped, 100, "CRC mismatch");
  check(good.substr(0, good.size() - 1), 100, "CRC mismatch");
  check(good, 101, "made for a blob of 100 bytes, not 101");
  // Well-formed files whose frames are out of place: overlapping, past the blob, a gap in the output.
  check(ZstdFrameFile::Encode(100, {{0, 30, 0, 10}, {29, 5, 10, 10}}), 100, "frame 1 is out of place");
  check(ZstdFrameFile::Encode(100, {{0, 30, 0, 10}, {90, 11, 10, 10}}), 100, "frame 1 is out of place");
  check(ZstdFrameFile::Encode(100, {{0, 30, 0, 10}, {30, 10, 11, 10}}), 100, "frame 1 is out of place");
  check(ZstdFrameFile::Encode(100, {{0, 0, 0, 10}}), 100, "frame 0 is out of place");
  CHECK(ZstdFrameFile::Decode(ZstdFrameFile::Encode(7, {}), 7, "F").ok());  // no frames: well-formed
}
