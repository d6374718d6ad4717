// The assembly of one image's read path: which stages ImageStack chooses for
// each layer kind and each option, asked through the stages' interfaces.
#include "stack/image_stack.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "image/tar_writer.h"
#include "registry/digest.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;
namespace fs = std::filesystem;

namespace {

enum class Kind { kNone, kGzip, kZstd };

// A raw disk of half random, half zero 64 KiB blocks.
std::string DiskBytes(size_t n) {
  std::string d(n, '\0');
  std::mt19937_64 rng(9);
  for (size_t i = 0; i < n; ++i) {
    if ((i / (64 << 10)) % 2 == 0) d[i] = static_cast<char>(rng());
  }
  return d;
}

std::string Gzip(const std::string& in) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string ZstdOneFrame(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::string Digest(const std::string& s) { return Sha256Digest({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); }

// An OCI layout holding a containerDisk: one layer with disk/disk.img.
struct ContainerDisk {
  TempDir dir{"stack-layout"};
  std::string disk = DiskBytes(2 << 20);
  std::string layer_digest;

  explicit ContainerDisk(Kind kind) {
    TarWriter tar;
    tar.Dir("disk/");
    tar.File("disk/disk.img", disk);
    std::string layer = tar.Finish();
    std::string media = "application/vnd.oci.image.layer.v1.tar";
    if (kind == Kind::kGzip) layer = Gzip(layer), media += "+gzip";
    if (kind == Kind::kZstd) layer = ZstdOneFrame(layer), media += "+zstd";
    layer_digest = Digest(layer);
    const std::string config = R"({"os":"linux","architecture":"amd64"})";
    const std::string manifest =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        Digest(config) + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[{"mediaType":")" + media +
        R"(","digest":")" + layer_digest + R"(","size":)" + std::to_string(layer.size()) + "}]}";
    fs::create_directories(root() / "blobs/sha256");
    for (const std::string* b : std::initializer_list<const std::string*>{&config, &layer, &manifest}) {
      std::ofstream(root() / "blobs/sha256" / Digest(*b).substr(7), std::ios::binary) << *b;
    }
    std::ofstream(root() / "oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
    std::ofstream(root() / "index.json")
        << R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
               Digest(manifest) + R"(","size":)" + std::to_string(manifest.size()) +
               R"(,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]})";
  }
  fs::path root() const { return fs::path(dir.path()) / "layout"; }
  fs::path cache() const { return fs::path(dir.path()) / "cache"; }

  std::unique_ptr<ImageStack> Open(StackOptions options) const {
    auto ref = Reference::Parse("oci:" + root().string() + ":v1");
    REQUIRE(ref.ok());
    auto stack = ImageStack::Open(*ref, options);
    REQUIRE(stack.ok());
    return std::move(stack).value();
  }
  StackOptions Cached() const {
    StackOptions o;
    o.cache_dir = cache().string();
    return o;
  }
  // Reads the whole disk through the stack and checks its bytes.
  void ReadDisk(const ImageStack& stack) const {
    auto view = stack.OpenDisk();
    REQUIRE(view.ok());
    std::vector<uint8_t> got(disk.size());
    REQUIRE(ReadExactly(**view, 0, got).ok());
    CHECK(std::memcmp(got.data(), disk.data(), disk.size()) == 0);
  }
  // Files kept of the disk's decompressed pieces in the cache dir.
  size_t KeptFiles() const {
    const fs::path kept = cache() / "kept";
    if (!fs::exists(kept)) return 0;
    return static_cast<size_t>(std::distance(fs::directory_iterator(kept), fs::directory_iterator{}));
  }
};

std::vector<std::string> Strategies(const ImageStack& stack) {
  REQUIRE(stack.layers().size() == 1);
  REQUIRE(stack.layers()[0].cached);
  return stack.layers()[0].cached->StrategyNames();
}

bool Has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("an uncompressed layer is read as the blob itself, through the cache when there is one") {
  ContainerDisk image(Kind::kNone);
  auto plain = image.Open({});
  const LayerView& bare = plain->layers()[0];
  CHECK(bare.cached == nullptr);
  CHECK(bare.decoded == bare.blob);
  auto cached = image.Open(image.Cached());
  const LayerView& layer = cached->layers()[0];
  REQUIRE(layer.cached != nullptr);
  CHECK(layer.blob == layer.cached);
  CHECK(layer.decoded == layer.blob);
  CHECK(layer.decoded->access() == ByteSource::Access::kRandom);
  image.ReadDisk(*cached);
  CHECK(image.KeptFiles() == 0);  // a raw disk in an uncompressed layer is read from the layer
}

TEST_CASE("a gzip layer is a stream until its index is saved, then random access") {
  ContainerDisk image(Kind::kGzip);
  {
    auto stack = image.Open(image.Cached());
    CHECK(stack->layers()[0].decoded->access() == ByteSource::Access::kStream);
    image.ReadDisk(*stack);
    // A read past the end returns once the pass has reached it; the pass's
    // task then saves the index, which the stack's Stop waits for.
    std::vector<uint8_t> past(1);
    REQUIRE(stack->layers()[0].decoded->ReadAt(UINT64_MAX - 1, past).ok());
  }
  auto again = image.Open(image.Cached());
  CHECK(again->layers()[0].decoded->access() == ByteSource::Access::kRandom);
  image.ReadDisk(*again);
}

TEST_CASE("a raw disk in a gzip layer keeps its pieces, one in a single-frame zstd layer does not") {
  ContainerDisk gzip(Kind::kGzip);
  auto g = gzip.Open(gzip.Cached());
  CHECK_FALSE(g->layers()[0].decoded->KeepsDecoded());
  gzip.ReadDisk(*g);
  CHECK(gzip.KeptFiles() == 1);

  ContainerDisk zstd(Kind::kZstd);
  auto z = zstd.Open(zstd.Cached());
  CHECK(z->layers()[0].decoded->access() == ByteSource::Access::kStream);
  CHECK(z->layers()[0].decoded->KeepsDecoded());  // its decoded store keeps the stream
  zstd.ReadDisk(*z);
  CHECK(zstd.KeptFiles() == 0);
}

TEST_CASE("cluster_cache off keeps nothing of the disk") {
  ContainerDisk image(Kind::kGzip);
  StackOptions o = image.Cached();
  o.cluster_cache = false;
  image.ReadDisk(*image.Open(o));
  CHECK(image.KeptFiles() == 0);
}

TEST_CASE("the fetch strategies of a layer follow the options, chosen in one place") {
  ContainerDisk image(Kind::kNone);
  SECTION("defaults: read-ahead, the small miss, a profile slot") {
    CHECK(Strategies(*image.Open(image.Cached())) == std::vector<std::string>{"readahead", "miss", "profile"});
  }
  SECTION("prefetch-all and a recorder") {
    StackOptions o = image.Cached();
    o.blob_reads.prefetch_all = true;
    o.blob_reads.recorder = std::make_shared<AccessRecorder>();
    CHECK(Strategies(*image.Open(o)) == std::vector<std::string>{"record", "readahead", "miss", "profile", "prefetch-all"});
  }
  SECTION("no read-ahead, whole-chunk misses") {
    StackOptions o = image.Cached();
    o.blob_reads.readahead.max = 0;
    o.blob_reads.exact_small_misses = false;
    CHECK(Strategies(*image.Open(o)) == std::vector<std::string>{"profile"});
  }
  SECTION("small chunks: a miss still brings its 1 MiB group") {
    StackOptions o = image.Cached();
    o.chunk_size = 64 << 10;
    o.blob_reads.exact_small_misses = false;
    CHECK(Has(Strategies(*image.Open(o)), "miss"));
  }
  SECTION("a cache too small to fetch ahead into: no read-ahead, no prefetch-all") {
    StackOptions o = image.Cached();
    o.cache_bytes = 8 << 20;
    o.blob_reads.prefetch_all = true;
    const auto names = Strategies(*image.Open(o));
    CHECK_FALSE(Has(names, "readahead"));
    CHECK_FALSE(Has(names, "prefetch-all"));
  }
}

TEST_CASE("stacks of one cache directory in one process share one ChunkCache") {
  ContainerDisk image(Kind::kNone);
  auto a = image.Open(image.Cached());
  auto b = image.Open(image.Cached());
  CHECK(a->cache() == b->cache());
  StackOptions other = image.Cached();
  other.chunk_size = 256 << 10;
  auto ref = Reference::Parse("oci:" + image.root().string() + ":v1");
  REQUIRE(ref.ok());
  auto refused = ImageStack::Open(*ref, other);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("chunk size") != std::string::npos);
}
