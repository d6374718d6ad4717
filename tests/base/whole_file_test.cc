#include "base/whole_file.h"

#include <fcntl.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "base/unique_fd.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;

TEST_CASE("a file written atomically reads back whole and replaces the old one, leaving no temp file") {
  TempDir tmp;
  const std::string path = tmp.path() + "/side";
  REQUIRE(WriteFileAtomically(path, "first version").ok());
  REQUIRE(WriteFileAtomically(path, std::string("second\0version", 14)).ok());
  auto got = ReadWholeFile(path, 1 << 20, "side file");
  REQUIRE(got.ok());
  CHECK(*got == std::string("second\0version", 14));
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) files += e.is_regular_file();
  CHECK(files == 1);
}

TEST_CASE("reading a whole file names a missing file, one over the bound, and a directory that is missing") {
  TempDir tmp;
  auto missing = ReadWholeFile(tmp.path() + "/nope", 100, "frame table");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message() == "frame table " + tmp.path() + "/nope does not exist");
  std::ofstream(tmp.path() + "/big") << std::string(101, 'x');
  auto big = ReadWholeFile(tmp.path() + "/big", 100, "frame table");
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().code() == Code::kCorrupt);
  CHECK(big.status().message().find("too large (101 bytes)") != std::string::npos);
  Status no_dir = WriteFileAtomically(tmp.path() + "/no/such/dir/file", "x");
  REQUIRE_FALSE(no_dir.ok());
  CHECK(no_dir.message().find("/no/such/dir/file.tmp.") != std::string::npos);
}

TEST_CASE("a file read into a mapping of its own has all its bytes; an empty file has none") {
  TempDir tmp;
  const std::string path = tmp.path() + "/index";
  std::string content(3u << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7 + i / 4096);
  REQUIRE(WriteFileAtomically(path, content).ok());
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  auto got = MappedFileBytes::Read(fd.get(), path);
  REQUIRE(got.ok());
  MappedFileBytes moved(std::move(*got));  // the bytes move with it, unmapped once
  CHECK(moved.bytes().size() == content.size());
  CHECK(std::equal(moved.bytes().begin(), moved.bytes().end(), content.begin(),
                   [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); }));
  REQUIRE(WriteFileAtomically(path, "").ok());
  UniqueFd empty(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto none = MappedFileBytes::Read(empty.get(), path);
  REQUIRE(none.ok());
  CHECK(none->bytes().empty());
  auto bad = MappedFileBytes::Read(-1, path);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find(path) != std::string::npos);
}
