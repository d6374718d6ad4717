#include "image/merged_tree.h"

#include <catch2/catch.hpp>

#include "image/tar_writer.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// Indexes each writer's stream as one layer, bottom first.
struct TreeImage {
  explicit TreeImage(const std::vector<TarWriter>& layers) {
    for (size_t i = 0; i < layers.size(); ++i) {
      auto index = TarIndex::Build(*Source(layers[i].Finish(), "layer " + std::to_string(i)));
      REQUIRE(index.ok());
      indexes.push_back(std::move(*index));
    }
  }
  Result<MergedTree> Merge() const {
    std::vector<const TarIndex*> ptrs;
    for (const TarIndex& index : indexes) ptrs.push_back(&index);
    return MergedTree::Build(ptrs);
  }
  std::vector<TarIndex> indexes;
};

std::vector<std::string> Names(const std::vector<const Node*>& nodes) {
  std::vector<std::string> out;
  for (const Node* n : nodes) out.push_back(std::string(BaseName(n->entry.path)));
  return out;
}

}  // namespace

TEST_CASE("merged tree takes a file replaced in an upper layer from that layer") {
  TarWriter lower, upper;
  lower.Dir("etc");
  lower.File("etc/os-release", "old");
  lower.File("etc/keep", "k");
  uint64_t off = upper.File("etc/os-release", "newer");
  auto tree = TreeImage({lower, upper}).Merge();
  REQUIRE(tree.ok());
  const Node* n = tree->Lookup("etc/os-release");
  REQUIRE(n);
  REQUIRE(n->layer == 1);
  REQUIRE(n->entry.size == 5);
  REQUIRE(n->entry.data_offset == off);
  REQUIRE(tree->Lookup("etc/keep")->layer == 0);
  REQUIRE(Names(tree->Children("etc")) == std::vector<std::string>{"keep", "os-release"});
}

TEST_CASE("merged tree deletes whited-out files and directories of lower layers only") {
  TarWriter lower, upper;
  lower.File("a.txt", "a");
  lower.Dir("var");
  lower.File("var/log/x", "x");
  lower.File("b.txt", "b");
  upper.File(".wh.a.txt", "");
  upper.File(".wh.var", "");
  upper.File("b.txt", "same layer as its whiteout");
  upper.File(".wh.b.txt", "");
  auto tree = TreeImage({lower, upper}).Merge();
  REQUIRE(tree.ok());
  REQUIRE(tree->Lookup("a.txt") == nullptr);
  REQUIRE(tree->Lookup("var") == nullptr);
  REQUIRE(tree->Lookup("var/log/x") == nullptr);
  REQUIRE(tree->Lookup("var/log") == nullptr);
  REQUIRE(tree->Lookup("b.txt"));
  REQUIRE(tree->Lookup("b.txt")->layer == 1);
  REQUIRE(tree->Lookup(".wh.a.txt") == nullptr);
  REQUIRE(Names(tree->Children("")) == std::vector<std::string>{"b.txt"});
}

TEST_CASE("merged tree hides every lower child of an opaque directory but keeps its own") {
  TarWriter lower, upper;
  lower.Dir("data", 0700);
  lower.File("data/old1", "1");
  lower.File("data/sub/old2", "2");
  lower.File("other", "o");
  upper.File("data/new", "n");  // before the marker in archive order: still kept
  upper.File("data/.wh..wh..opq", "");
  upper.File("data/.wh..wh.plnk", "");  // reserved names are never shown
  auto tree = TreeImage({lower, upper}).Merge();
  REQUIRE(tree.ok());
  REQUIRE(Names(tree->Children("data")) == std::vector<std::string>{"new"});
  REQUIRE(tree->Lookup("data/sub/old2") == nullptr);
  REQUIRE(tree->Lookup("data")->entry.mode == 0700);
  REQUIRE(tree->Lookup("other"));
}

TEST_CASE("merged tree replaces a directory by a file and a file by a directory") {
  TarWriter lower, upper;
  lower.File("opt/app/bin", "b");
  lower.File("opt/app/lib", "l");
  lower.File("srv", "was a file");
  lower.Dir("usr", 0700);
  lower.File("usr/share/doc", "d");
  upper.File("opt/app", "now a file");
  upper.Dir("srv");
  upper.File("srv/index.html", "i");
  upper.Dir("usr", 0755);  // a directory over a directory keeps its children
  auto tree = TreeImage({lower, upper}).Merge();
  REQUIRE(tree.ok());
  REQUIRE(tree->Lookup("opt/app")->entry.type == EntryType::kFile);
  REQUIRE(tree->Lookup("opt/app/bin") == nullptr);
  REQUIRE(tree->Children("opt/app").empty());
  REQUIRE(tree->Lookup("srv")->entry.type == EntryType::kDirectory);
  REQUIRE(Names(tree->Children("srv")) == std::vector<std::string>{"index.html"});
  REQUIRE(tree->Lookup("usr")->entry.mode == 0755);
  REQUIRE(tree->Lookup("usr/share/doc"));
}

TEST_CASE("merged tree creates missing parent directories with mode 0755") {
  TarWriter layer;
  layer.File("disk/nested/dir/disk.img", "d");
  layer.File("./", "a root entry that is not a directory is ignored");
  auto tree = TreeImage({layer}).Merge();
  REQUIRE(tree.ok());
  for (const char* dir : {"", "disk", "disk/nested", "disk/nested/dir"}) {
    INFO(dir);
    const Node* n = tree->Lookup(dir);
    REQUIRE(n);
    REQUIRE(n->entry.type == EntryType::kDirectory);
    REQUIRE(n->entry.mode == 0755);
  }
  REQUIRE(tree->nodes().size() == 5);
  REQUIRE(tree->nodes().front().entry.path == "");
}

TEST_CASE("merged tree takes the root's attributes from a ./ entry") {
  TarWriter layer;
  layer.Dir("./", 0700);
  layer.File("f", "x");
  auto tree = TreeImage({layer}).Merge();
  REQUIRE(tree.ok());
  REQUIRE(tree->Lookup("")->entry.mode == 0700);
  REQUIRE(Names(tree->Children("")) == std::vector<std::string>{"f"});
}

TEST_CASE("merged tree resolves a hardlink to its target's data and layer") {
  TarWriter lower, upper;
  uint64_t off = lower.File("disk/disk.img", "0123456789", 0640);
  lower.Hardlink("disk/alias.img", "./disk/disk.img");
  lower.Symlink("lnk", "disk");
  lower.Hardlink("lnk2", "lnk");
  upper.Hardlink("up.img", "disk/disk.img");  // target in a lower layer
  auto tree = TreeImage({lower, upper}).Merge();
  REQUIRE(tree.ok());
  const Node* alias = tree->Lookup("disk/alias.img");
  REQUIRE(alias->entry.type == EntryType::kFile);
  REQUIRE(alias->entry.path == "disk/alias.img");
  REQUIRE(alias->entry.data_offset == off);
  REQUIRE(alias->entry.size == 10);
  REQUIRE(alias->entry.mode == 0640);
  REQUIRE(alias->layer == 0);
  REQUIRE(tree->Lookup("lnk2")->entry.type == EntryType::kSymlink);
  REQUIRE(tree->Lookup("lnk2")->entry.link_target == "disk");
  REQUIRE(tree->Lookup("up.img")->layer == 0);
  REQUIRE(tree->Lookup("up.img")->entry.data_offset == off);
}

TEST_CASE("merged tree rejects a hardlink to a missing target, naming the layer") {
  TarWriter layer;
  layer.Hardlink("orphan", "nowhere");
  auto tree = TreeImage({layer}).Merge();
  REQUIRE(tree.status().code() == Code::kCorrupt);
  REQUIRE_THAT(tree.status().message(), Catch::Contains("layer 0") && Catch::Contains("orphan") &&
                                            Catch::Contains("nowhere"));
}

TEST_CASE("merged tree resolves symlinks inside the image") {
  TarWriter layer;
  layer.File("usr/bin/ls", "elf");
  layer.Symlink("bin", "usr/bin");
  layer.Symlink("usr/bin/list", "./ls");
  layer.Symlink("etc/abs", "/usr/bin/ls");
  layer.Symlink("etc/up", "../../../../usr/bin/list");
  layer.Symlink("dangling", "nope");
  layer.Symlink("loop1", "loop2");
  layer.Symlink("loop2", "/loop1");
  layer.Symlink("through-file", "usr/bin/ls/x");
  auto tree = TreeImage({layer}).Merge();
  REQUIRE(tree.ok());
  const Node* ls = tree->Lookup("usr/bin/ls");
  for (const char* path : {"usr/bin/ls", "bin/ls", "/bin/list", "etc/abs", "etc/up", "bin/../bin/ls"}) {
    INFO(path);
    auto r = tree->Resolve(path);
    REQUIRE(r.ok());
    REQUIRE(*r == ls);
  }
  REQUIRE(*tree->Resolve("bin") == tree->Lookup("usr/bin"));
  REQUIRE(tree->Lookup("bin")->entry.type == EntryType::kSymlink);  // Lookup does not follow
  REQUIRE(tree->Resolve("dangling").status().code() == Code::kNotFound);
  REQUIRE(tree->Resolve("through-file").status().code() == Code::kNotFound);
  auto loop = tree->Resolve("loop1");
  REQUIRE_FALSE(loop.ok());
  REQUIRE_THAT(loop.status().message(), Catch::Contains("too many levels of symbolic links"));
}

TEST_CASE("merged tree lists children sorted by name") {
  TarWriter layer;
  for (const char* name : {"d/b", "d/a-b", "d/a", "d/a/x", "d/C", "d/a.b"}) layer.File(name, "x");
  auto tree = TreeImage({layer}).Merge();
  REQUIRE(tree.ok());
  REQUIRE(Names(tree->Children("d")) == std::vector<std::string>{"C", "a", "a-b", "a.b", "b"});
  REQUIRE(Names(tree->Children("d/a")) == std::vector<std::string>{"x"});
  REQUIRE(tree->Children("d/b").empty());
  REQUIRE(tree->Children("missing").empty());
}

TEST_CASE("merged tree rejects a null layer") {
  auto tree = MergedTree::Build({nullptr});
  REQUIRE(tree.status().code() == Code::kInvalidArgument);
}
