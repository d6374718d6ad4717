#include "fuse/fs_model.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "base/memory_source.h"

using namespace ocifs;

TEST_CASE("a single-file model shows one read-only file at the root") {
  auto content = MemorySource::FromString("disk bytes");
  FsModel model = FsModel::SingleFile("disk.img", content, 1700000000);
  const FsNode* file = model.Lookup(1, "disk.img");
  REQUIRE(file != nullptr);
  REQUIRE(S_ISREG(file->mode));
  REQUIRE((file->mode & 0777) == 0444);
  REQUIRE(file->size == 10);
  REQUIRE(model.Lookup(1, "other") == nullptr);
  REQUIRE(model.Lookup(1, "..")->ino == 1);
}

TEST_CASE("write bits are cleared and directory entries sorted") {
  FsModel model;
  FsNode dir;
  dir.mode = S_IFDIR | 0777;
  uint64_t d = model.Add(1, "zeta", dir);
  FsNode file;
  file.mode = S_IFREG | 0666;
  file.content = MemorySource::FromString("x");
  model.Add(1, "alpha", file);
  model.Add(d, "inner", file);
  model.Seal();
  REQUIRE(model.Get(1)->children.front().first == "alpha");
  REQUIRE((model.Lookup(1, "zeta")->mode & 0777) == 0555);
  REQUIRE((model.Lookup(d, "inner")->mode & 0777) == 0444);
  REQUIRE(model.Lookup(d, "inner")->parent == d);
}

TEST_CASE("lookups of unknown inodes and non-directories fail cleanly") {
  FsModel model = FsModel::SingleFile("disk.img", MemorySource::FromString("x"), 0);
  REQUIRE(model.Get(0) == nullptr);
  REQUIRE(model.Get(99) == nullptr);
  REQUIRE(model.Lookup(2, "x") == nullptr);
}
