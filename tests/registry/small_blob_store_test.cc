#include "registry/small_blob_store.h"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "registry/digest.h"

using namespace ocifs;

namespace {

Descriptor DescriptorOf(const std::vector<uint8_t>& bytes) {
  Descriptor d;
  d.digest = Sha256Digest(bytes);
  d.size = bytes.size();
  return d;
}

// A fresh directory under TMPDIR, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "small-blob-store-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("small blob store keeps a small blob and gives it back") {
  TempDir dir;
  SmallBlobStore store((dir.path / "configs").string());
  const std::vector<uint8_t> config(300, 'c');
  const Descriptor d = DescriptorOf(config);
  CHECK_FALSE(store.Get(d).has_value());
  store.Put(d, config);
  auto kept = store.Get(d);
  REQUIRE(kept.has_value());
  CHECK(*kept == config);
}

TEST_CASE("small blob store does not keep a blob over its limit") {
  TempDir dir;
  SmallBlobStore store((dir.path / "configs").string());
  const std::vector<uint8_t> at_limit(SmallBlobStore::kMaxKeptBytes, 'a');
  const std::vector<uint8_t> over(SmallBlobStore::kMaxKeptBytes + 1, 'b');
  store.Put(DescriptorOf(at_limit), at_limit);
  store.Put(DescriptorOf(over), over);
  CHECK(store.Get(DescriptorOf(at_limit)).has_value());
  CHECK_FALSE(store.Get(DescriptorOf(over)).has_value());
}
