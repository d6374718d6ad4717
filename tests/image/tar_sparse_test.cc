#include "image/tar_sparse.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "image/tar_index.h"
#include "image/tar_writer.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// The logical content of a sparse entry: zeros with the packed runs copied in.
std::string Expand(const std::string& tar, const TarEntry& e) {
  std::string out(e.size, '\0');
  uint64_t packed = e.data_offset;
  for (const SparseRun& r : e.sparse_map) {
    out.replace(r.offset, r.length, tar.substr(packed, r.length));
    packed += r.length;
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 24-byte slot of an old GNU sparse map.
void PutSlot(std::string& block, size_t at, uint64_t offset, uint64_t length) {
  PutOctal(block, at, 12, offset);
  PutOctal(block, at + 12, 12, length);
}

}  // namespace

TEST_CASE("tar index reads an old GNU sparse file with extension headers") {
  // Six runs of 10 bytes, one every 1000 bytes: four in the header, two in an extension.
  std::string content(6000, '\0');
  std::string packed;
  for (int i = 0; i < 6; ++i) {
    std::string run(10, static_cast<char>('a' + i));
    content.replace(i * 1000, 10, run);
    packed += run;
  }
  std::string header = HeaderBlock({.name = "disk/sparse.img", .type = 'S', .size = packed.size(),
                                    .magic = TarHeaderSpec::kOldGnu},
                                   [](std::string& b) {
                                     for (int i = 0; i < 4; ++i) PutSlot(b, 386 + 24 * i, i * 1000, 10);
                                     b[482] = 1;  // extended
                                     PutOctal(b, 483, 12, 6000);
                                   });
  std::string ext(512, '\0');
  PutSlot(ext, 0, 4000, 10);
  PutSlot(ext, 24, 5000, 10);
  TarWriter w;
  w.Raw(header + ext + Padded(packed));
  w.File("after", "x");
  std::string tar = w.Finish();
  auto index = TarIndex::Build(*Source(tar));
  REQUIRE(index.ok());
  REQUIRE(index->entries().size() == 2);
  const TarEntry& e = index->entries()[0];
  REQUIRE(e.sparse);
  REQUIRE(e.size == 6000);
  REQUIRE(e.sparse_map.size() == 6);
  REQUIRE(e.data_offset == 1024);
  REQUIRE(e.StoredSize() == 60);
  REQUIRE(Expand(tar, e) == content);
  REQUIRE(index->entries()[1].path == "after");
}

TEST_CASE("tar index rejects a sparse map that does not match the stored data") {
  std::string header = HeaderBlock({.name = "bad", .type = 'S', .size = 10, .magic = TarHeaderSpec::kOldGnu},
                                   [](std::string& b) {
                                     PutSlot(b, 386, 0, 20);  // 20 bytes mapped, 10 stored
                                     PutOctal(b, 483, 12, 100);
                                   });
  auto index = TarIndex::Build(*Source(header + Padded("0123456789") + std::string(1024, '\0')));
  REQUIRE(index.status().code() == Code::kCorrupt);
  REQUIRE_THAT(index.status().message(), Catch::Contains("sparse map") && Catch::Contains("sha256:test"));
}

TEST_CASE("tar index reads pax sparse 0.1 and 1.0 maps written by hand") {
  SECTION("0.1: GNU.sparse.map") {
    TarWriter w;
    w.Pax({{"GNU.sparse.size", "100"}, {"GNU.sparse.map", "10,3,50,2"}, {"GNU.sparse.name", "disk/x.img"}});
    w.File("GNUSparseFile.1/x.img", "abcde");
    std::string tar = w.Finish();
    auto index = TarIndex::Build(*Source(tar));
    REQUIRE(index.ok());
    const TarEntry& e = index->entries()[0];
    REQUIRE(e.path == "disk/x.img");
    REQUIRE(e.size == 100);
    REQUIRE(e.sparse_map == std::vector<SparseRun>{{10, 3}, {50, 2}});
    std::string want(100, '\0');
    want.replace(10, 3, "abc");
    want.replace(50, 2, "de");
    REQUIRE(Expand(tar, e) == want);
  }
  SECTION("1.0: the map at the start of the data") {
    TarWriter w;
    w.Pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "4096"},
           {"GNU.sparse.name", "disk/y.img"}});
    w.File("GNUSparseFile.1/y.img", Padded("1\n2048\n4\n") + "WXYZ");
    std::string tar = w.Finish();
    auto index = TarIndex::Build(*Source(tar));
    REQUIRE(index.ok());
    const TarEntry& e = index->entries()[0];
    REQUIRE(e.path == "disk/y.img");
    REQUIRE(e.size == 4096);
    REQUIRE(e.data_offset == 1024 + 512 + 512);  // pax header + data, entry header, map block
    REQUIRE(Expand(tar, e).substr(2048, 4) == "WXYZ");
  }
  SECTION("an unknown version is unsupported") {
    TarWriter w;
    w.Pax({{"GNU.sparse.major", "2"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "10"}});
    w.File("disk/z.img", "x");
    auto index = TarIndex::Build(*Source(w.Finish()));
    REQUIRE(index.status().code() == Code::kUnsupported);
    REQUIRE_THAT(index.status().message(), Catch::Contains("sparse file disk/z.img in tar is not supported"));
  }
}

TEST_CASE("tar index reads sparse files written by GNU tar in every sparse format") {
  std::string dir = (std::filesystem::temp_directory_path() / "ocifs-sparse-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()));
  struct Cleanup {
    std::string d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  {
    std::ofstream f(dir + "/disk.img", std::ios::binary);
    f.seekp(1 << 20);
    f << std::string(5000, 'A');
    f.seekp(3 << 20);
    f << std::string(100, 'B');
    f.seekp((4 << 20) - 1);
    f << '\0';
  }
  struct stat st;
  REQUIRE(::stat((dir + "/disk.img").c_str(), &st) == 0);
  if (static_cast<uint64_t>(st.st_blocks) * 512 >= static_cast<uint64_t>(st.st_size)) {
    WARN("the temp filesystem does not keep holes; GNU tar would not write a sparse entry");
    return;
  }
  std::string original = ReadFile(dir + "/disk.img");
  struct Variant {
    const char* name;
    const char* flags;
  };
  for (Variant v : {Variant{"gnu", "-H gnu"}, Variant{"pax00", "-H pax --sparse-version=0.0"},
                    Variant{"pax01", "-H pax --sparse-version=0.1"}, Variant{"pax10", "-H pax --sparse-version=1.0"}}) {
    INFO(v.name);
    std::string cmd = std::string("cd '") + dir + "' && tar --sparse " + v.flags + " -cf " + v.name +
                      ".tar disk.img 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::string tar = ReadFile(dir + "/" + v.name + ".tar");
    auto index = TarIndex::Build(*Source(tar));
    REQUIRE(index.ok());
    REQUIRE(index->complete());
    REQUIRE(index->entries().size() == 1);
    const TarEntry& e = index->entries()[0];
    REQUIRE(e.path == "disk.img");
    REQUIRE(e.sparse);
    REQUIRE(e.size == original.size());
    REQUIRE(e.StoredSize() < original.size() / 4);
    REQUIRE(Expand(tar, e) == original);
  }
}
