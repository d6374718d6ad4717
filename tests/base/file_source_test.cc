#include "base/file_source.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

using namespace ocifs;

TEST_CASE("file source reads a local file at an offset") {
  char path[] = "/tmp/ocifs-file-source-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "hello world", 11) == 11);
  close(fd);
  auto src = FileSource::Open(path);
  REQUIRE(src.ok());
  REQUIRE((*src)->size() == 11);
  std::vector<uint8_t> buf(5);
  auto n = (*src)->ReadAt(6, buf);
  REQUIRE(n.ok());
  REQUIRE(std::string(buf.begin(), buf.end()) == "world");
  unlink(path);
}

TEST_CASE("file source names a missing file") {
  auto src = FileSource::Open("/nonexistent/ocifs-test");
  REQUIRE_FALSE(src.ok());
  REQUIRE(src.status().message().find("/nonexistent/ocifs-test") != std::string::npos);
}
