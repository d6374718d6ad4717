// A mount's use of an acceleration artifact, against an ImageSource fake that
// serves referrers, manifests and blobs from memory and counts what is asked.
#include "accel/accel_loader.h"

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "accel/accel_manifest.h"
#include "base/memory_source.h"
#include "base/whole_file.h"
#include "base/worker_pool.h"
#include "cache/chunk_cache.h"
#include "decode/decoder.h"
#include "decode/gzip_index.h"
#include "decode/gzip_index_v4.h"
#include "image/tar_index_file.h"
#include "image/tar_writer.h"
#include "registry/digest.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

std::string Digest(std::string_view s) {
  return Sha256Digest({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

// A gzip layer and the index its first pass saves (version 3).
struct GzipLayer {
  std::string data, gz, index;
  explicit GzipLayer(uint32_t seed) {
    std::mt19937 rng(seed);
    data.resize(3 << 20);
    for (size_t i = 0; i < data.size(); ++i) data[i] = (i / 65536) % 3 == 0 ? '\0' : static_cast<char>(rng() % 7);
    const std::vector<uint8_t> member = GzipMember(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
    gz.assign(member.begin(), member.end());
    TempDir dir("accel-index");
    DecoderOptions o;
    o.index_path = dir.path() + "/i.gzidx";
    o.checkpoint_spacing = 256 << 10;
    {
      auto decoded = OpenDecoded(MemorySource::FromString(gz), Compression::kGzip, o);
      REQUIRE(decoded.ok());
      std::vector<uint8_t> all(data.size());
      REQUIRE(ReadExactly(**decoded, 0, all).ok());
      REQUIRE((*decoded)->WaitUntilIndexed().ok());
    }
    auto saved = ReadWholeFile(o.index_path, 64 << 20, "index");
    INFO(saved.status().ToString());
    REQUIRE(saved.ok());
    index = *saved;
  }
};

// Serves one repository from memory.
class FakeSource final : public ImageSource {
 public:
  std::map<std::string, std::string> blobs;  // digest -> bytes (manifests too)
  std::vector<Descriptor> referrers;
  std::atomic<int> referrer_calls = 0, manifest_fetches = 0, blob_fetches = 0;
  // FetchBlob waits (up to 5 s) until this many fetches are in flight together.
  int fetch_together = 1;
  int most_in_flight = 0;  // guarded by mu

  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;  // guarded by mu
  bool released = false;  // guarded by mu: fetch_together were in flight once

  Result<ResolvedImage> Resolve(const BesideConfigFn&) override { return Internal("not used"); }
  Result<ByteSourcePtr> OpenBlob(const Descriptor& d) override {
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return NotFound("blob " + d.digest);
    return ByteSourcePtr(MemorySource::FromString(it->second));  // nothing fetched until read
  }
  Result<std::vector<uint8_t>> FetchBlob(const Descriptor& d) override {
    ++blob_fetches;
    {
      std::unique_lock lock(mu);
      most_in_flight = std::max(most_in_flight, ++in_flight);
      if (in_flight >= fetch_together) released = true;
      cv.notify_all();
      cv.wait_for(lock, std::chrono::seconds(5), [this] { return released; });
    }
    {
      std::lock_guard lock(mu);
      --in_flight;
    }
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return NotFound("blob " + d.digest);
    return std::vector<uint8_t>(it->second.begin(), it->second.end());
  }
  Result<ReferrerList> ListReferrers(const std::string&, const std::string& type) override {
    ++referrer_calls;
    ReferrerList l;
    l.source = ReferrerList::Source::kFallbackTag;
    for (const Descriptor& d : referrers) {
      if (d.artifact_type == type) l.manifests.push_back(d);
    }
    return l;
  }
  Result<FetchedManifest> FetchManifest(const Descriptor& d) override {
    ++manifest_fetches;
    auto it = blobs.find(d.digest);
    if (it == blobs.end()) return NotFound("manifest " + d.digest);
    return FetchedManifest{std::string(media_type::kOciManifest), d.digest, it->second};
  }

  Descriptor Put(std::string bytes) {
    Descriptor d{"", Digest(bytes), bytes.size(), {}, {}, {}};
    blobs[d.digest] = std::move(bytes);
    return d;
  }
  // Pushes an artifact manifest and lists it as a referrer; returns its digest.
  std::string Publish(const AccelManifest& m, const std::string& created = "2026-12-05T10:00:00Z") {
    Descriptor d = Put(SerializeAccelManifest(m));
    d.media_type = std::string(media_type::kOciManifest);
    d.artifact_type = std::string(accel::kArtifactType);
    d.annotations[std::string(accel::kCreatedAnnotation)] = created;
    referrers.push_back(d);
    return d.digest;
  }
};

ResolvedImage Image(const GzipLayer& layer) {
  ResolvedImage image;
  auto ref = Reference::Parse("registry.test/a/disk:v1");
  REQUIRE(ref.ok());
  image.reference = *ref;
  image.manifest_digest = Digest("the image manifest");
  image.manifest_media_type = std::string(media_type::kOciManifest);
  image.layers.push_back({"application/vnd.oci.image.layer.v1.tar+gzip", Digest(layer.gz), layer.gz.size(), {}, {}, {}});
  return image;
}

AccelManifest ArtifactFor(const ResolvedImage& image, FakeSource& src, const std::string& index_bytes) {
  AccelManifest m;
  m.subject = {image.manifest_media_type, image.manifest_digest, 18, {}, {}, {}};
  m.layer_indexes.push_back({LayerIndexKind::kGzipIndex, src.Put(index_bytes), image.layers[0].digest, image.layers[0].size});
  return m;
}

// An artifact for `image` whose one piece is `layer`'s index as version 4
// (read lazily); returns it with that piece's descriptor.
std::pair<AccelManifest, Descriptor> LazyArtifactFor(const ResolvedImage& image, FakeSource& src, const GzipLayer& layer) {
  auto v3 = GzipIndex::Parse({reinterpret_cast<const uint8_t*>(layer.index.data()), layer.index.size()}, "v3");
  REQUIRE(v3.ok());
  auto v4 = GzipIndexV4::Serialize(*v3);
  REQUIRE(v4.ok());
  AccelManifest m;
  m.subject = {image.manifest_media_type, image.manifest_digest, 18, {}, {}, {}};
  const Descriptor piece = src.Put(std::string(v4->begin(), v4->end()));
  m.layer_indexes.push_back({LayerIndexKind::kGzipIndexV4, piece, image.layers[0].digest, image.layers[0].size});
  return {m, piece};
}

struct Cache {
  TempDir dir{"accel-cache"};
  std::shared_ptr<ChunkCache> cache;
  Cache() {
    ChunkCacheOptions o;
    o.dir = dir.path();
    auto c = ChunkCache::OpenShared(o);
    REQUIRE(c.ok());
    cache = *c;
  }
};

}  // namespace

TEST_CASE("auto: the artifact's gzip index is installed without its zero runs, and a later mount asks nothing") {
  GzipLayer layer(1);
  ResolvedImage image = Image(layer);
  FakeSource src;
  src.Publish(ArtifactFor(image, src, layer.index));
  Cache c;
  auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(use->artifact.rfind("registry.test/a/disk@sha256:", 0) == 0);
  CHECK(use->indexed_layers == std::vector<std::string>{image.layers[0].digest});
  CHECK(src.referrer_calls == 1);

  const std::string side = c.cache->SidePath(image.layers[0].digest, "gzidx");
  auto installed = ReadWholeFile(side, 64 << 20, "index");
  REQUIRE(installed.ok());
  auto parsed = GzipIndex::Parse({reinterpret_cast<const uint8_t*>(installed->data()), installed->size()}, "i");
  REQUIRE(parsed.ok());
  CHECK(parsed->has_checksums());
  CHECK_FALSE(parsed->zero_runs_known);
  CHECK(parsed->zero_runs.empty());
  auto original = GzipIndex::Parse({reinterpret_cast<const uint8_t*>(layer.index.data()), layer.index.size()}, "o");
  REQUIRE(original.ok());
  CHECK_FALSE(original->zero_runs.empty());  // the layer has runs: the install dropped them
  CHECK(parsed->checkpoints.size() == original->checkpoints.size());

  // The installed index serves the layer exactly.
  DecoderOptions o;
  o.index_path = side;
  auto decoded = OpenDecoded(MemorySource::FromString(layer.gz), Compression::kGzip, o);
  REQUIRE(decoded.ok());
  std::vector<uint8_t> tail(4096);
  REQUIRE(ReadExactly(**decoded, layer.data.size() - tail.size(), tail).ok());
  CHECK(std::equal(tail.begin(), tail.end(), layer.data.end() - static_cast<ptrdiff_t>(tail.size())));

  // Again: the record answers, nothing is asked.
  const int fetches = src.manifest_fetches + src.blob_fetches;
  auto again = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(again.ok());
  CHECK(again->artifact == use->artifact);
  CHECK(src.referrer_calls == 1);
  CHECK(src.manifest_fetches + src.blob_fetches == fetches);
}

TEST_CASE("auto: the newest artifact is used, and its profile") {
  GzipLayer layer(2);
  ResolvedImage image = Image(layer);
  FakeSource src;
  src.Publish(ArtifactFor(image, src, layer.index), "2026-01-01T00:00:00Z");
  AccelManifest newer = ArtifactFor(image, src, layer.index);
  const std::string profile = "oci-fs-profile 1\nchunk-size 65536\nblob " + image.layers[0].digest + " 2\n0\n5\n";
  newer.profiles.push_back(src.Put(profile));
  const std::string newest = src.Publish(newer, "2026-06-01T00:00:00Z");
  src.Publish(ArtifactFor(image, src, layer.index), "2025-01-01T00:00:00Z");
  Cache c;
  auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(use->artifact.ends_with(newest));
  REQUIRE(use->profile);
  CHECK(use->profile->ChunkCount() == 2);
}

TEST_CASE("auto: no artifact, another image's, or a bad index: the mount goes on without, nothing installed") {
  GzipLayer layer(3);
  ResolvedImage image = Image(layer);
  Cache c;
  const std::string side = c.cache->SidePath(image.layers[0].digest, "gzidx");

  FakeSource none;
  auto use = ApplyAccel(AccelChoice{}, none, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(use->artifact.empty());
  CHECK(none.referrer_calls == 1);

  FakeSource other;
  AccelManifest m = ArtifactFor(image, other, layer.index);
  m.subject.digest = Digest("another image");
  other.Publish(m);
  use = ApplyAccel(AccelChoice{}, other, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(use->artifact.empty());
  CHECK_FALSE(std::filesystem::exists(side));

  SECTION("an index for a layer the image does not have is skipped") {
    FakeSource src;
    AccelManifest wrong = ArtifactFor(image, src, layer.index);
    wrong.layer_indexes[0].layer_size += 1;
    src.Publish(wrong);
    use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    CHECK(use->indexed_layers.empty());
    CHECK_FALSE(std::filesystem::exists(side));
  }
  SECTION("an index without checksums (version 2) is refused") {
    auto v3 = GzipIndex::Parse({reinterpret_cast<const uint8_t*>(layer.index.data()), layer.index.size()}, "i");
    REQUIRE(v3.ok());
    GzipIndex v2 = *v3;
    v2.block_size = 0;
    v2.block_crcs.clear();
    auto bytes = v2.Serialize();
    REQUIRE(bytes.ok());
    FakeSource src;
    src.Publish(ArtifactFor(image, src, std::string(bytes->begin(), bytes->end())));
    use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    CHECK(use->indexed_layers.empty());
    CHECK_FALSE(std::filesystem::exists(side));
  }
  SECTION("garbage in place of the index is refused") {
    FakeSource src;
    src.Publish(ArtifactFor(image, src, "OCIFSGZI not really an index"));
    use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    CHECK(use->indexed_layers.empty());
    CHECK_FALSE(std::filesystem::exists(side));
  }
}

TEST_CASE("off asks nothing; a pinned choice parses, and a bad one is refused") {
  GzipLayer layer(4);
  ResolvedImage image = Image(layer);
  FakeSource src;
  src.Publish(ArtifactFor(image, src, layer.index));
  Cache c;
  auto off = AccelChoice::Parse("off");
  REQUIRE(off.ok());
  auto use = ApplyAccel(*off, src, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(use->artifact.empty());
  CHECK(src.referrer_calls == 0);

  auto pinned = AccelChoice::Parse("registry.test/other/repo@" + Digest("x"));
  REQUIRE(pinned.ok());
  CHECK(pinned->mode == AccelChoice::Mode::kPinned);
  CHECK(pinned->pinned.repository == "other/repo");
  CHECK(AccelChoice::Parse("registry.test/a:tag").status().code() == Code::kInvalidArgument);
  CHECK(AccelChoice::Parse("oci:/x@" + Digest("x")).status().code() == Code::kInvalidArgument);
  CHECK(AccelChoice::Parse("auto")->mode == AccelChoice::Mode::kAuto);
}

TEST_CASE("auto: a version 4 gzip index is not fetched at mount; the layer's decoder reads it lazily") {
  GzipLayer layer(5);
  ResolvedImage image = Image(layer);
  FakeSource src;
  auto [m, piece] = LazyArtifactFor(image, src, layer);
  src.Publish(m);
  Cache c;
  auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(src.blob_fetches == 0);
  CHECK(use->indexed_layers == std::vector<std::string>{image.layers[0].digest});
  REQUIRE(use->lazy_indexes.count(image.layers[0].digest) == 1);
  const AccelUse::LazyIndex& lazy = use->lazy_indexes.at(image.layers[0].digest);
  CHECK(lazy.digest == piece.digest);
  CHECK(lazy.kind == LayerIndexKind::kGzipIndexV4);
  CHECK_FALSE(std::filesystem::exists(c.cache->SidePath(image.layers[0].digest, "gzidx")));

  // The layer's decoder opens it and reads the layer exactly.
  DecoderOptions o;
  o.gzip_index_blob = lazy.blob;
  auto decoded = OpenDecoded(MemorySource::FromString(layer.gz), Compression::kGzip, o);
  REQUIRE(decoded.ok());
  CHECK((*decoded)->access() == ByteSource::Access::kRandom);
  std::vector<uint8_t> all(layer.data.size());
  REQUIRE(ReadExactly(**decoded, 0, all).ok());
  CHECK(std::equal(all.begin(), all.end(), layer.data.begin(), [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); }));

  // With an index of the node's own in the cache, the artifact's is not used.
  REQUIRE(WriteFileAtomically(c.cache->SidePath(image.layers[0].digest, "gzidx"), layer.index).ok());
  auto again = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(again.ok());
  CHECK(again->lazy_indexes.empty());
  CHECK(again->indexed_layers == std::vector<std::string>{image.layers[0].digest});
}

// Counts the reads of a source it wraps (the mount's cache stage in InstallAccel).
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(ByteSourcePtr inner) : inner_(std::move(inner)) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    reads += 1;
    if (offset == 0) head_bytes = std::max<uint64_t>(head_bytes, buf.size());
    return inner_->ReadAt(offset, buf);
  }
  mutable std::atomic<int> reads = 0;
  mutable std::atomic<uint64_t> head_bytes = 0;

 private:
  ByteSourcePtr inner_;
};

TEST_CASE("a mount's install fetches the artifact's pieces side by side and reads a lazy index's head through its cache") {
  GzipLayer layer(7);
  ResolvedImage image = Image(layer);
  const std::string& digest = image.layers[0].digest;
  FakeSource src;
  auto [m, index_piece] = LazyArtifactFor(image, src, layer);
  TarWriter w;
  w.File("disk/disk.img", std::string(3000, 'd'));
  auto built = TarIndex::Build(*Source(w.Finish()));
  REQUIRE(built.ok());
  m.tar_indexes.push_back({src.Put(TarIndexFile::Encode(*built, "layer " + digest)), digest, image.layers[0].size});
  m.profiles.push_back(src.Put("oci-fs-profile 1\nchunk-size 65536\nblob " + digest + " 2\n0\n5\n"));
  src.Publish(m);
  Cache c;

  auto candidate = FindAccelForMount(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(candidate.ok());
  REQUIRE_FALSE(candidate->reference.empty());
  CHECK_FALSE(candidate->recorded);

  WorkerPool pool(4);
  std::shared_ptr<CountingSource> wrapped;
  std::string wrapped_digest;
  AccelInstallHelpers helpers;
  helpers.pool = &pool;
  helpers.cache_index = [&](const std::string& d, ByteSourcePtr raw) {
    wrapped_digest = d;
    wrapped = std::make_shared<CountingSource>(std::move(raw));
    return ByteSourcePtr(wrapped);
  };
  helpers.index_head_bytes = 4096;
  src.fetch_together = 2;  // the tar index and the profile: each fetch waits for the other
  const auto start = std::chrono::steady_clock::now();
  auto use = InstallAccel(AccelChoice{}, std::move(candidate), src, image, *c.cache, helpers);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(use.ok());
  CHECK(src.most_in_flight == 2);
  CHECK(seconds < 4);  // not one waiting out the other's 5 s
  CHECK(use->tar_indexed_layers == std::set<std::string>{digest});
  REQUIRE(use->profile);
  CHECK(use->profile->ChunkCount() == 2);
  REQUIRE(wrapped);
  CHECK(wrapped_digest == index_piece.digest);
  REQUIRE(use->lazy_indexes.count(digest) == 1);
  CHECK(use->lazy_indexes.at(digest).blob == wrapped);  // the layer reads the cached one
  CHECK(wrapped->head_bytes == std::min<uint64_t>(4096, index_piece.size));
  // The record is kept: the next mount asks nothing.
  auto again = FindAccelForMount(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(again.ok());
  CHECK(again->recorded);
  CHECK(src.referrer_calls == 1);
}

TEST_CASE("auto: a version 2 zstd checkpoint index is not fetched at mount, unless a mark says it proved wrong") {
  GzipLayer layer(6);  // ApplyAccel matches the piece to the layer by digest and size only
  ResolvedImage image = Image(layer);
  FakeSource src;
  AccelManifest m;
  m.subject = {image.manifest_media_type, image.manifest_digest, 18, {}, {}, {}};
  const Descriptor piece = src.Put("OCIFSZCI, read by the layer's decoder");
  m.layer_indexes.push_back({LayerIndexKind::kZstdCheckpointsV2, piece, image.layers[0].digest, image.layers[0].size});
  src.Publish(m);
  Cache c;
  auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(use.ok());
  CHECK(src.blob_fetches == 0);
  CHECK(use->indexed_layers == std::vector<std::string>{image.layers[0].digest});
  REQUIRE(use->lazy_indexes.count(image.layers[0].digest) == 1);
  CHECK(use->lazy_indexes.at(image.layers[0].digest).kind == LayerIndexKind::kZstdCheckpointsV2);
  CHECK(use->lazy_indexes.at(image.layers[0].digest).digest == piece.digest);
  // A side file (the mark a wrong index leaves) wins: nothing to read lazily.
  REQUIRE(WriteFileAtomically(c.cache->SidePath(image.layers[0].digest, "zstdckpt"),
                              "oci-fs: this zstd checkpoint index proved wrong\n").ok());
  auto again = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
  REQUIRE(again.ok());
  CHECK(again->lazy_indexes.empty());
  CHECK(src.blob_fetches == 0);
}

TEST_CASE("auto: the artifact's tar index is kept, checked, beside the layer; a walked one wins; a bad one is skipped") {
  GzipLayer layer(6);
  ResolvedImage image = Image(layer);
  const std::string& digest = image.layers[0].digest;
  TarWriter w;
  w.File("disk/disk.img", std::string(3000, 'd'));
  auto built = TarIndex::Build(*Source(w.Finish()));
  REQUIRE(built.ok());
  const std::string good = TarIndexFile::Encode(*built, "layer " + digest);
  auto publish = [&](FakeSource& src, const std::string& bytes, uint64_t layer_size) {
    AccelManifest m = ArtifactFor(image, src, layer.index);
    m.tar_indexes.push_back({src.Put(bytes), digest, layer_size});
    src.Publish(m);
  };
  Cache c;
  const std::string kept = c.cache->SidePath(digest, "tarindex-accel");

  SECTION("a good one is kept, and a later mount fetches nothing more") {
    FakeSource src;
    publish(src, good, image.layers[0].size);
    auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    CHECK(use->tar_indexed_layers == std::set<std::string>{digest});
    auto kept_bytes = ReadWholeFile(kept, 1 << 20, "kept");
    REQUIRE(kept_bytes.ok());
    CHECK(*kept_bytes == good);
    const int fetches = src.blob_fetches;
    auto again = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(again.ok());
    CHECK(again->tar_indexed_layers == std::set<std::string>{digest});
    CHECK(src.blob_fetches == fetches);

    // Once the node walked the layer itself, the artifact's is not used.
    REQUIRE(built->Save(c.cache->SidePath(digest, "tarindex")).ok());
    auto walked = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(walked.ok());
    CHECK(walked->tar_indexed_layers.empty());
  }
  SECTION("a flipped byte, a truncation or an incomplete index: skipped, nothing kept, the rest still used") {
    std::string flipped = good;
    flipped[good.size() / 2] ^= 0x10;
    TarIndexOptions stop;
    stop.on_entry = [](const TarEntry&) { return false; };
    auto partial = TarIndex::Build(*Source(w.Finish()), stop);
    REQUIRE(partial.ok());
    for (const std::string& bad : {flipped, good.substr(0, good.size() - 3), TarIndexFile::Encode(*partial)}) {
      FakeSource src;
      publish(src, bad, image.layers[0].size);
      Cache fresh;
      auto use = ApplyAccel(AccelChoice{}, src, image, {}, *fresh.cache);
      REQUIRE(use.ok());
      CHECK(use->tar_indexed_layers.empty());
      CHECK(use->indexed_layers == std::vector<std::string>{digest});  // its gzip index still is
      CHECK_FALSE(std::filesystem::exists(fresh.cache->SidePath(digest, "tarindex-accel")));
    }
  }
  SECTION("one for a layer of another size is skipped, unfetched") {
    FakeSource src;
    publish(src, good, image.layers[0].size + 1);
    auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    CHECK(use->tar_indexed_layers.empty());
    CHECK(src.blob_fetches == 1);  // the gzip index only
    CHECK_FALSE(std::filesystem::exists(kept));
  }
}

TEST_CASE("auto: the artifact's raw span table is loaded for a layer it indexes, kept, and a bad one is skipped") {
  GzipLayer layer(7);
  ResolvedImage image = Image(layer);
  const std::string& digest = image.layers[0].digest;
  auto table_for = [&](uint64_t blob_size) {
    auto t = RawSpanTable::Make(blob_size, layer.data.size(), 4096, {{1000, 2000, 5000}}, {1, 2});
    REQUIRE(t.ok());
    return t->Serialize();
  };
  const std::string good = table_for(image.layers[0].size);
  auto publish = [&](FakeSource& src, const std::string& bytes, bool with_index) {
    AccelManifest m = ArtifactFor(image, src, layer.index);
    if (!with_index) m.layer_indexes.clear();
    m.raw_spans.push_back({src.Put(bytes), digest, image.layers[0].size});
    src.Publish(m);
  };
  Cache c;

  SECTION("a good one is loaded and kept: a later mount fetches nothing more") {
    FakeSource src;
    publish(src, good, true);
    auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    REQUIRE(use->raw_spans.count(digest) == 1);
    CHECK(use->raw_spans.at(digest)->spans().size() == 1);
    const int fetches = src.blob_fetches;
    auto again = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(again.ok());
    CHECK(again->raw_spans.count(digest) == 1);
    CHECK(src.blob_fetches == fetches);
  }
  SECTION("a flipped byte, a truncation, or one for a blob of another size: skipped, the index still used") {
    std::string flipped = good;
    flipped[good.size() / 2] ^= 0x10;
    for (const std::string& bad : {flipped, good.substr(0, good.size() - 3), table_for(image.layers[0].size + 1)}) {
      FakeSource src;
      publish(src, bad, true);
      Cache fresh;
      auto use = ApplyAccel(AccelChoice{}, src, image, {}, *fresh.cache);
      REQUIRE(use.ok());
      CHECK(use->raw_spans.empty());
      CHECK(use->indexed_layers == std::vector<std::string>{digest});
    }
  }
  SECTION("without the layer's index in the artifact it is not fetched") {
    FakeSource src;
    publish(src, good, false);
    auto use = ApplyAccel(AccelChoice{}, src, image, {}, *c.cache);
    REQUIRE(use.ok());
    CHECK(use->raw_spans.empty());
    CHECK(src.blob_fetches == 0);
  }
}
