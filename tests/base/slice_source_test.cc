#include "base/slice_source.h"

#include <catch2/catch.hpp>

#include "base/memory_source.h"

using namespace ocifs;

TEST_CASE("slice source forwards reads with the window's offset added") {
  auto inner = MemorySource::FromString("0123456789");
  auto slice = SliceSource::Make(inner, 3, 4, "slice");
  REQUIRE(slice.ok());
  REQUIRE((*slice)->size() == 4);
  std::vector<uint8_t> buf(10);
  auto n = (*slice)->ReadAt(1, buf);
  REQUIRE(n.ok());
  REQUIRE(*n == 3);
  REQUIRE(std::string(buf.begin(), buf.begin() + 3) == "456");
  auto past = (*slice)->ReadAt(4, buf);
  REQUIRE(past.ok());
  REQUIRE(*past == 0);
}

TEST_CASE("slice source refuses a window past the end of its source") {
  auto inner = MemorySource::FromString("0123456789");
  auto slice = SliceSource::Make(inner, 8, 4, "entry disk/disk.img");
  REQUIRE_FALSE(slice.ok());
  REQUIRE(slice.status().code() == Code::kCorrupt);
  REQUIRE(slice.status().message().find("entry disk/disk.img") != std::string::npos);
}

TEST_CASE("read exactly reports a short source as corrupt") {
  auto inner = MemorySource::FromString("abc");
  std::vector<uint8_t> buf(5);
  Status s = ReadExactly(*inner, 0, buf);
  REQUIRE(s.code() == Code::kCorrupt);
}
