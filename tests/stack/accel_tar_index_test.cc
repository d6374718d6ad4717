// An acceleration artifact's tar index, trusted entry by entry: files read
// through it are exact whatever the index says, or fail; never wrong bytes.
#include "stack/accel_tar_index.h"

#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "image/tar_index_file.h"
#include "image/tar_writer.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// Counts reads, and fails them while `fail` is set.
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(std::string bytes) : inner_(Source(std::move(bytes))) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    ++reads;
    if (fail) return Unavailable("the registry is away");
    return inner_->ReadAt(offset, buf);
  }
  mutable std::atomic<int> reads{0};
  std::atomic<bool> fail{false};

 private:
  std::shared_ptr<MemorySource> inner_;
};

// 40 small files, then the disk, then a few more.
std::string Layer(bool reordered = false) {
  TarWriter w;
  w.Dir("etc");
  std::vector<int> order;
  for (int i = 0; i < 40; ++i) order.push_back(i);
  if (reordered) std::swap(order[2], order[3]);  // same sizes: 2 and 3 trade places
  for (int i : order) w.File("etc/f" + std::to_string(i), std::string(100 + (i / 2) * 2, static_cast<char>('a' + i % 26)));
  w.Pax({{"path", "disk/" + std::string(110, 'l') + ".img"}});
  w.File("disk/x", std::string(3000, 'D'));
  w.File("z/after", "after");
  return w.Finish();
}

std::string IndexBytes(const std::string& tar) {
  auto index = TarIndex::Build(*Source(tar));
  REQUIRE(index.ok());
  return TarIndexFile::Encode(*index, "layer sha256:test");
}

std::string ReadAll(const ByteSource& s) {
  std::vector<uint8_t> buf(s.size());
  auto n = s.ReadAt(0, buf);
  INFO((n.ok() ? std::string() : n.status().ToString()));
  REQUIRE(n.ok());
  return std::string(buf.begin(), buf.begin() + static_cast<long>(*n));
}

const TarEntry& Entry(const TarIndex& index, const std::string& path) {
  for (const TarEntry& e : index.entries()) {
    if (e.path == path) return e;
  }
  FAIL("no entry " << path);
  return index.entries().front();
}

struct Fixture {
  TempDir dir{"accel-tar"};
  std::string tar = Layer();
  std::shared_ptr<CountingSource> layer = std::make_shared<CountingSource>(tar);
  std::string piece = dir.path() + "/l.tarindex-accel";
  std::string walked = dir.path() + "/l.tarindex";
  std::shared_ptr<AccelTarIndex> Load(const std::string& bytes) {
    std::ofstream(piece, std::ios::binary | std::ios::trunc) << bytes;
    auto loaded = AccelTarIndex::Load(piece, layer, walked, "layer sha256:test");
    INFO((loaded.ok() ? std::string() : loaded.status().ToString()));
    REQUIRE(loaded.ok());
    return *loaded;
  }
  // The bytes of `path` as the layer's own tar gives them.
  std::string Truth(const std::string& path) {
    auto index = TarIndex::Build(*Source(tar));
    const TarEntry& e = Entry(*index, path);
    return tar.substr(e.data_offset, e.size);
  }
};

}  // namespace

TEST_CASE("an artifact's tar index lists the layer without a read; each file is checked by one read, then served") {
  Fixture f;
  auto accel = f.Load(IndexBytes(f.tar));
  CHECK(f.layer->reads == 0);
  const std::string disk = "disk/" + std::string(110, 'l') + ".img";
  const TarEntry& e = Entry(*accel->index(), disk);
  ByteSourcePtr content = accel->Content(e, "/" + disk);
  CHECK(content->size() == 3000);
  CHECK(f.layer->reads == 0);  // nothing before the first read
  CHECK(ReadAll(*content) == std::string(3000, 'D'));
  CHECK(f.layer->reads == 2);  // its headers (pax and its own), then its bytes
  CHECK(ReadAll(*content) == std::string(3000, 'D'));
  CHECK(f.layer->reads == 3);  // checked once
  CHECK_FALSE(accel->dropped());
  CHECK_FALSE(std::filesystem::exists(f.walked));
}

TEST_CASE("a tar index of another layout is caught at a file's first read; the layer's own tar serves it exact") {
  Fixture f;
  // Entries 2 and 3 trade places: the index sends etc/f3 to etc/f2's header.
  auto accel = f.Load(IndexBytes(Layer(/*reordered=*/true)));
  const TarEntry& f3 = Entry(*accel->index(), "etc/f3");
  ByteSourcePtr content = accel->Content(f3, "/etc/f3");
  auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  const std::string got = ReadAll(*content);
  spdlog::set_level(level);
  CHECK(got == f.Truth("etc/f3"));
  CHECK(accel->dropped());
  // The walked index is saved where later mounts load it, and it is the layer's.
  auto saved = TarIndex::Load(f.walked);
  REQUIRE(saved.ok());
  CHECK(Entry(*saved, "etc/f3").data_offset == Entry(*TarIndex::Build(*Source(f.tar)), "etc/f3").data_offset);
  // Every other file of the layer is served from the walk, with no more checks.
  const int reads = f.layer->reads;
  ByteSourcePtr after = accel->Content(Entry(*accel->index(), "z/after"), "/z/after");
  CHECK(ReadAll(*after) == "after");
  CHECK(f.layer->reads == reads + 1);
}

TEST_CASE("a file the artifact's tar index gives another size fails its reads rather than serve other bytes") {
  Fixture f;
  TarWriter w;  // the same names, etc/f0 longer
  w.Dir("etc");
  w.File("etc/f0", std::string(777, 'q'));
  auto other = TarIndex::Build(*Source(w.Finish()));
  REQUIRE(other.ok());
  auto accel = f.Load(TarIndexFile::Encode(*other));
  ByteSourcePtr content = accel->Content(Entry(*accel->index(), "etc/f0"), "/etc/f0");
  std::vector<uint8_t> buf(777);
  auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::off);
  auto read = content->ReadAt(0, buf);
  spdlog::set_level(level);
  REQUIRE(read.status().code() == Code::kCorrupt);
  CHECK_THAT(read.status().message(), Catch::Contains("/etc/f0") && Catch::Contains("777"));
}

TEST_CASE("a failed read while checking proves nothing: the next read checks again") {
  Fixture f;
  auto accel = f.Load(IndexBytes(f.tar));
  ByteSourcePtr content = accel->Content(Entry(*accel->index(), "z/after"), "/z/after");
  f.layer->fail = true;
  std::vector<uint8_t> buf(5);
  CHECK(content->ReadAt(0, buf).status().code() == Code::kUnavailable);
  f.layer->fail = false;
  CHECK(ReadAll(*content) == "after");
  CHECK_FALSE(accel->dropped());
}

TEST_CASE("an artifact's tar index that cannot describe the layer is refused at load, naming the fault") {
  Fixture f;
  auto load = [&](const std::string& bytes) {
    std::ofstream(f.piece, std::ios::binary | std::ios::trunc) << bytes;
    return AccelTarIndex::Load(f.piece, f.layer, f.walked, "layer sha256:test").status();
  };
  // Entries past the layer's end: an index of a longer layer.
  TarWriter w;
  w.File("big", std::string(f.tar.size(), 'b'));
  auto longer = TarIndex::Build(*Source(w.Finish()));
  Status past = load(TarIndexFile::Encode(*longer));
  CHECK(past.code() == Code::kCorrupt);
  CHECK_THAT(past.message(), Catch::Contains("big") && Catch::Contains("past the layer"));
  // An incomplete index.
  TarIndexOptions stop;
  stop.on_entry = [](const TarEntry&) { return false; };
  auto partial = TarIndex::Build(*Source(f.tar), stop);
  CHECK_THAT(load(TarIndexFile::Encode(*partial)).message(), Catch::Contains("not of a whole layer"));
  // Bit flips and truncations.
  const std::string good = IndexBytes(f.tar);
  for (size_t cut : {size_t{0}, size_t{10}, good.size() / 2, good.size() - 1}) {
    CHECK(load(good.substr(0, cut)).code() == Code::kCorrupt);
  }
  std::string flipped = good;
  flipped[good.size() / 3] ^= 4;
  CHECK(load(flipped).code() == Code::kCorrupt);
  CHECK(f.layer->reads == 0);
}
