#include "image/sparse_file_source.h"

#include <catch2/catch.hpp>

#include "base/memory_source.h"

using namespace ocifs;

namespace {

// A layer holding "....ABCDxyz" with the data runs stored from offset 4:
// run (2, 4) = "ABCD", run (10, 3) = "xyz" of a 16-byte file.
TarEntry SparseEntry() {
  TarEntry e;
  e.path = "disk/disk.img";
  e.type = EntryType::kFile;
  e.size = 16;
  e.data_offset = 4;
  e.sparse = true;
  e.sparse_map = {{2, 4}, {10, 3}};
  return e;
}

}  // namespace

TEST_CASE("a sparse file reads its runs in place and zeros between them") {
  auto layer = MemorySource::FromString("....ABCDxyz");
  auto src = SparseFileSource::Make(layer, SparseEntry(), "sparse");
  REQUIRE(src.ok());
  std::vector<uint8_t> buf(16, 0xff);
  auto n = (*src)->ReadAt(0, buf);
  REQUIRE(n.ok());
  REQUIRE(*n == 16);
  std::string expected("\0\0ABCD\0\0\0\0xyz\0\0\0", 16);
  REQUIRE(std::string(buf.begin(), buf.end()) == expected);
  std::vector<uint8_t> mid(5);
  REQUIRE(*(*src)->ReadAt(4, mid) == 5);
  REQUIRE(std::string(mid.begin(), mid.end()) == std::string("CD\0\0\0", 5));
}

TEST_CASE("a sparse file reports its gaps as holes") {
  auto layer = MemorySource::FromString("....ABCDxyz");
  auto src = *SparseFileSource::Make(layer, SparseEntry(), "sparse");
  auto e0 = *src->ExtentAt(0);
  REQUIRE(e0.hole);
  REQUIRE(e0.length == 2);
  auto e1 = *src->ExtentAt(3);
  REQUIRE_FALSE(e1.hole);
  REQUIRE(e1.offset == 3);
  REQUIRE(e1.length == 3);
  auto e2 = *src->ExtentAt(6);
  REQUIRE(e2.hole);
  REQUIRE(e2.length == 4);
  auto tail = *src->ExtentAt(13);
  REQUIRE(tail.hole);
  REQUIRE(tail.length == 3);
}

TEST_CASE("a sparse map out of order or past the file is corrupt") {
  auto layer = MemorySource::FromString("....ABCDxyz");
  TarEntry e = SparseEntry();
  e.sparse_map = {{10, 3}, {2, 4}};
  REQUIRE(SparseFileSource::Make(layer, e, "sparse").status().code() == Code::kCorrupt);
  e.sparse_map = {{14, 4}};
  REQUIRE(SparseFileSource::Make(layer, e, "sparse").status().code() == Code::kCorrupt);
  e.sparse_map = {{0, 16}};  // 16 stored bytes from offset 4 do not fit in an 11-byte layer
  REQUIRE(SparseFileSource::Make(layer, e, "sparse").status().code() == Code::kCorrupt);
}
