#include "image/disk_locator.h"

#include <catch2/catch.hpp>

#include "image/tar_writer.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// Owns the layer indexes and the tree built from them.
struct Image {
  explicit Image(const std::vector<TarWriter>& layers) {
    std::vector<const TarIndex*> ptrs;
    indexes.reserve(layers.size());
    for (const TarWriter& w : layers) {
      auto index = TarIndex::Build(*Source(w.Finish()));
      REQUIRE(index.ok());
      indexes.push_back(std::move(*index));
      ptrs.push_back(&indexes.back());
    }
    auto merged = MergedTree::Build(ptrs);
    REQUIRE(merged.ok());
    tree = std::move(*merged);
  }
  std::vector<TarIndex> indexes;
  MergedTree tree;
};

}  // namespace

TEST_CASE("disk locator finds the one regular file under /disk") {
  TarWriter layer;
  layer.Dir("disk");
  uint64_t off = layer.File("disk/fedora.qcow2", "QFI\xfb");
  layer.File("disk/nested/other.img", "not counted: KubeVirt looks at disk/ only");
  layer.File("README", "r");
  Image image({layer});
  auto disk = LocateDisk(image.tree);
  REQUIRE(disk.ok());
  REQUIRE((*disk)->entry.path == "disk/fedora.qcow2");
  REQUIRE((*disk)->entry.data_offset == off);
}

TEST_CASE("disk locator reports an image without a disk") {
  TarWriter no_dir, empty_dir, only_dirs;
  no_dir.File("etc/hosts", "h");
  empty_dir.Dir("disk");
  only_dirs.Dir("disk/sub");
  only_dirs.Symlink("disk/dangling", "nowhere");
  for (const TarWriter& w : {no_dir, empty_dir, only_dirs}) {
    Image image({w});
    auto disk = LocateDisk(image.tree);
    REQUIRE(disk.status().code() == Code::kNotFound);
    REQUIRE(disk.status().message() == "image has no disk: no regular file under /disk (use --disk-path)");
  }
}

TEST_CASE("disk locator refuses to guess between two disks") {
  TarWriter layer;
  layer.File("disk/b.qcow2", "b");
  layer.File("disk/a.img", "a");
  Image image({layer});
  auto disk = LocateDisk(image.tree);
  REQUIRE(disk.status().code() == Code::kInvalidArgument);
  REQUIRE(disk.status().message() ==
          "image has 2 files under /disk (disk/a.img, disk/b.qcow2): pick one with --disk-path");
}

TEST_CASE("disk locator takes an explicit disk path, following symlinks") {
  TarWriter layer;
  layer.File("disk/a.img", "a");
  uint64_t off = layer.File("images/b.qcow2", "b");
  layer.Symlink("current", "/images/b.qcow2");
  layer.Add({.name = "dev/null", .type = '3'});
  Image image({layer});
  REQUIRE((*LocateDisk(image.tree, "disk/a.img"))->entry.path == "disk/a.img");
  REQUIRE((*LocateDisk(image.tree, "/images/b.qcow2"))->entry.data_offset == off);
  REQUIRE((*LocateDisk(image.tree, "current"))->entry.path == "images/b.qcow2");

  auto missing = LocateDisk(image.tree, "disk/x");
  REQUIRE(missing.status().code() == Code::kNotFound);
  REQUIRE(missing.status().message() == "--disk-path disk/x: not in the image");
  auto dir = LocateDisk(image.tree, "disk");
  REQUIRE(dir.status().code() == Code::kInvalidArgument);
  REQUIRE(dir.status().message() == "--disk-path disk: is a directory");
  auto dev = LocateDisk(image.tree, "dev/null");
  REQUIRE(dev.status().code() == Code::kInvalidArgument);
  REQUIRE_THAT(dev.status().message(), Catch::Contains("not a regular file"));
}

TEST_CASE("disk locator follows a symlink under /disk to a regular file") {
  TarWriter layer;
  layer.File("images/real.img", "r");
  layer.Symlink("disk/disk.img", "../images/real.img");
  layer.Hardlink("disk/same.img", "images/real.img");  // the same data under other names
  layer.Symlink("disk/again.img", "disk.img");
  Image image({layer});
  auto disk = LocateDisk(image.tree);
  REQUIRE(disk.ok());
  REQUIRE((*disk)->entry.data_offset == image.tree.Lookup("images/real.img")->entry.data_offset);
  // Two files with equal bytes are still two disks.
  TarWriter two;
  two.File("disk/one.img", "r");
  two.File("disk/two.img", "r");
  Image image2({two});
  REQUIRE(LocateDisk(image2.tree).status().code() == Code::kInvalidArgument);
}

TEST_CASE("disk locator sees the disk of the top layer that replaced it") {
  TarWriter lower, upper;
  lower.File("disk/disk.img", "old");
  uint64_t off = upper.File("disk/disk.img", "new disk");
  Image image({lower, upper});
  auto disk = LocateDisk(image.tree);
  REQUIRE(disk.ok());
  REQUIRE((*disk)->layer == 1);
  REQUIRE((*disk)->entry.data_offset == off);
  REQUIRE((*disk)->entry.size == 8);
}

TEST_CASE("disk locator does not see a disk removed by a whiteout") {
  TarWriter lower, upper;
  lower.File("disk/disk.img", "old");
  upper.File("disk/.wh.disk.img", "");
  Image image({lower, upper});
  REQUIRE(LocateDisk(image.tree).status().code() == Code::kNotFound);

  TarWriter replaced;
  replaced.File("disk/.wh.disk.img", "");
  replaced.File("disk/new.qcow2", "n");
  Image image2({lower, replaced});
  REQUIRE((*LocateDisk(image2.tree))->entry.path == "disk/new.qcow2");
}
