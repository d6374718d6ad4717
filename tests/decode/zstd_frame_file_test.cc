#include "decode/zstd_frame_file.h"

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
