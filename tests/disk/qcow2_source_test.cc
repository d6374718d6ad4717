#include "disk/qcow2_source.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "disk/disk_view.h"
#include "disk/fixtures/qemu_fixtures.h"
#include "testing/counting_source.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint64_t kSourceMiB = 1 << 20;

std::shared_ptr<Qcow2Source> OpenQcow2(const std::string& path, DiskViewOptions options = {}) {
  auto file = FileSource::Open(path);
  REQUIRE(file.ok());
  auto src = Qcow2Source::Open(*file, options);
  INFO(src.status().ToString());
  REQUIRE(src.ok());
  return *src;
}

// Opens `qcow2` and checks full reads, random reads and holes against qemu.
// Returns the source it read.
std::shared_ptr<Qcow2Source> RequireLikeQemu(const std::string& qcow2, const TempDir& dir, int random_reads = 60) {
  auto src = OpenQcow2(qcow2);
  auto ref = QemuRawOf(qcow2, dir);
  RequireSameBytes(*src, ref);
  RequireRandomReadsMatch(*src, ref, random_reads, 42);
  REQUIRE(ExtentHoleSectors(*src) == QemuHoleSectors(qcow2, dir, src->size()));
  return src;
}

std::string Convert(const TempDir& dir, const std::string& raw, const std::string& name, const std::string& opts,
                    bool compress = false) {
  std::string out = dir / name;
  Sh("qemu-img convert -f raw -O qcow2 " + std::string(compress ? "-c " : "") + "-o " + opts + " '" + raw +
     "' '" + out + "'");
  return out;
}

// A compressed qcow2 (64 KiB clusters) of MakeMixedRaw's `size` bytes, and qemu's raw reading of it.
std::pair<std::string, std::vector<uint8_t>> CompressedMixedImage(const TempDir& dir, uint64_t size) {
  std::string raw = dir / "r.raw";
  MakeMixedRaw(raw, size, 8);
  auto img = Convert(dir, raw, "c.qcow2", "cluster_size=65536", true);
  return {img, QemuRawOf(img, dir)};
}

}  // namespace

TEST_CASE("qcow2 v2 and v3 images of every cluster size read like qemu-img's raw conversion") {
  TempDir dir;
  std::string raw = dir / "mixed.raw";
  MakeMixedRaw(raw, 8 * kSourceMiB, 1);
  for (std::string compat : {"0.10", "1.1"}) {
    for (std::string cluster : {"512", "4096", "65536", "2M"}) {
      DYNAMIC_SECTION("compat " << compat << ", cluster_size " << cluster) {
        auto img = Convert(dir, raw, "plain.qcow2", "compat=" + compat + ",cluster_size=" + cluster);
        RequireLikeQemu(img, dir);
        auto src = OpenQcow2(img);
        REQUIRE(src->header().version == (compat == "1.1" ? 3u : 2u));
      }
    }
  }
}

TEST_CASE("deflate-compressed qcow2 images read like qemu-img's raw conversion") {
  TempDir dir;
  std::string raw = dir / "mixed.raw";
  MakeMixedRaw(raw, 8 * kSourceMiB, 2);
  for (std::string opts : {"compat=0.10,cluster_size=4096", "compat=1.1,cluster_size=512",
                           "compat=1.1,cluster_size=65536", "compat=1.1,cluster_size=2M"}) {
    DYNAMIC_SECTION(opts) {
      auto img = Convert(dir, raw, "deflate.qcow2", opts, true);
      REQUIRE(RequireLikeQemu(img, dir)->decompressions() >= 4);
    }
  }
}

TEST_CASE("zstd-compressed qcow2 images read like qemu-img's raw conversion") {
  TempDir dir;
  std::string raw = dir / "mixed.raw";
  MakeMixedRaw(raw, 8 * kSourceMiB, 3);
  for (std::string cluster : {"512", "65536", "2M"}) {
    DYNAMIC_SECTION("cluster_size " << cluster) {
      auto img = Convert(dir, raw, "zstd.qcow2", "compression_type=zstd,cluster_size=" + cluster, true);
      auto src = OpenQcow2(img);
      REQUIRE(src->header().compression == Qcow2Compression::kZstd);
      REQUIRE(RequireLikeQemu(img, dir)->decompressions() >= 4);
    }
  }
}

TEST_CASE("extended L2 images read per-subcluster data, zeros and unallocated ranges like qemu") {
  TempDir dir;
  std::string raw = dir / "mixed.raw";
  MakeMixedRaw(raw, 8 * kSourceMiB, 4);
  for (std::string cluster : {"16384", "65536", "2M"}) {
    DYNAMIC_SECTION("cluster_size " << cluster) {
      auto img = Convert(dir, raw, "ext.qcow2", "extended_l2=on,cluster_size=" + cluster);
      // Subcluster-sized writes and zero writes inside allocated and unallocated clusters.
      Sh("qemu-io -f qcow2 -c 'write -P 0x5a 7340544 2048' -c 'write -z 1049088 4096' "
         "-c 'write -z 4194304 65536' -c 'write -P 0x11 6291968 512' -c 'write -z 16384 1024' '" + img + "'");
      auto src = OpenQcow2(img);
      REQUIRE(src->header().extended_l2);
      RequireLikeQemu(img, dir);
    }
  }
  SECTION("compressed clusters in an extended L2 image") {
    auto img = Convert(dir, raw, "extc.qcow2", "extended_l2=on,cluster_size=65536", true);
    REQUIRE(RequireLikeQemu(img, dir)->decompressions() >= 4);
  }
}

TEST_CASE("zero clusters read as zeros and are holes") {
  TempDir dir;
  std::string raw = dir / "mixed.raw";
  MakeMixedRaw(raw, 8 * kSourceMiB, 5);
  for (std::string compat : {"0.10", "1.1"}) {
    DYNAMIC_SECTION("compat " << compat) {
      auto img = Convert(dir, raw, "zero.qcow2", "compat=" + compat + ",cluster_size=65536");
      Sh("qemu-io -f qcow2 -c 'write -P 0xcd 0 4M' -c 'write -z 1M 64k' -c 'write -z 3M 512k' '" + img + "'");
      RequireLikeQemu(img, dir);
      if (compat == "1.1") {
        auto src = OpenQcow2(img);
        auto e = src->ExtentAt(3 * kSourceMiB + 4096);
        REQUIRE(e.ok());
        REQUIRE(e->hole);
        REQUIRE(e->offset + e->length >= 3 * kSourceMiB + 512 * 1024);
      }
    }
  }
}

TEST_CASE("metadata-preallocated images read what was written and zeros elsewhere") {
  TempDir dir;
  std::string img = dir / "prealloc.qcow2";
  Sh("qemu-img create -f qcow2 -o preallocation=metadata,cluster_size=65536 '" + img + "' 16M");
  Sh("qemu-io -f qcow2 -c 'write -P 0xab 0 1M' -c 'write -P 0x12 5M 100k' '" + img + "'");
  auto src = OpenQcow2(img);
  auto ref = QemuRawOf(img, dir);
  RequireSameBytes(*src, ref);
  RequireRandomReadsMatch(*src, ref, 40, 7);
  // Preallocated clusters are data to us; qemu may call them zero when the
  // host file has a hole there. What we call a hole, qemu must too.
  auto ours = ExtentHoleSectors(*src);
  auto qemu = QemuHoleSectors(img, dir, src->size());
  for (size_t s = 0; s < ours.size(); ++s) {
    if (ours[s]) REQUIRE(qemu[s]);
  }
  REQUIRE_FALSE(ours[0]);
}

TEST_CASE("an image with an internal snapshot reads the active L1 table") {
  TempDir dir;
  std::string img = dir / "snap.qcow2";
  Sh("qemu-img create -f qcow2 '" + img + "' 16M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x01 0 2M' '" + img + "'");
  Sh("qemu-img snapshot -c s1 '" + img + "'");
  Sh("qemu-io -f qcow2 -c 'write -P 0x02 1M 2M' -c 'write -z 0 64k' '" + img + "'");
  RequireLikeQemu(img, dir);
  auto src = OpenQcow2(img);
  std::vector<uint8_t> b(1);
  REQUIRE(src->ReadAt(1 * kSourceMiB, b).ok());
  REQUIRE(b[0] == 0x02);
  REQUIRE(src->ReadAt(100000, b).ok());
  REQUIRE(b[0] == 0x01);
}

TEST_CASE("a virtual size that is not a multiple of the cluster size reads to its last byte") {
  TempDir dir;
  std::string raw = dir / "odd.raw";
  MakeMixedRaw(raw, 8 * kSourceMiB + 3 * 512, 6);
  for (bool compress : {false, true}) {
    DYNAMIC_SECTION("compressed " << compress) {
      auto img = Convert(dir, raw, "odd.qcow2", "cluster_size=65536", compress);
      RequireLikeQemu(img, dir);
      auto src = OpenQcow2(img);
      REQUIRE(src->size() == 8 * kSourceMiB + 3 * 512);
      std::vector<uint8_t> b(4096);
      auto n = src->ReadAt(src->size() - 100, b);
      REQUIRE(n.ok());
      REQUIRE(*n == 100);
    }
  }
}

TEST_CASE("unallocated and zero clusters are read without reading the image file") {
  TempDir dir;
  std::string img = dir / "sparse.qcow2";
  Sh("qemu-img create -f qcow2 -o cluster_size=65536 '" + img + "' 64M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x33 0 64k' -c 'write -z 128k 64k' '" + img + "'");
  auto file = FileSource::Open(img);
  REQUIRE(file.ok());
  auto counting = std::make_shared<CountingSource>(*file);
  auto src = Qcow2Source::Open(counting, {});
  REQUIRE(src.ok());
  std::vector<uint8_t> buf(64 * 1024, 0xff);
  REQUIRE((*src)->ReadAt(0, buf).ok());  // loads the first L2 table
  int before = counting->reads.load();
  REQUIRE((*src)->ReadAt(128 * 1024, buf).ok());  // zero cluster, L2 cached
  REQUIRE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
  std::fill(buf.begin(), buf.end(), 0xff);
  REQUIRE((*src)->ReadAt(40 * kSourceMiB, buf).ok());  // no L2 table at all
  REQUIRE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0; }));
  REQUIRE(counting->reads.load() == before);
  REQUIRE((*src)->l2_table_loads() == 1);
}

TEST_CASE("a compressed cluster read in 4 KiB pieces is decompressed once") {
  TempDir dir;
  std::string raw = dir / "r.raw";
  MakeMixedRaw(raw, 4 * kSourceMiB, 8);
  Sh("base64 /dev/urandom | head -c 65536 | dd of='" + raw + "' conv=notrunc status=none");
  auto img = Convert(dir, raw, "c.qcow2", "cluster_size=65536", true);
  auto src = OpenQcow2(img);
  auto ref = QemuRawOf(img, dir);
  std::vector<uint8_t> piece(4096);
  for (uint64_t off = 0; off < 65536; off += 4096) {
    REQUIRE(src->ReadAt(off, piece).ok());
    REQUIRE(std::memcmp(piece.data(), ref.data() + off, 4096) == 0);
  }
  REQUIRE(src->decompressions() == 1);
}

TEST_CASE("concurrent readers of one compressed cluster decompress it once") {
  TempDir dir;
  std::string raw = dir / "r.raw";
  Sh("base64 /dev/urandom | head -c 4194304 > '" + raw + "'");
  auto img = Convert(dir, raw, "c.qcow2", "cluster_size=2M", true);
  auto ref = QemuRawOf(img, dir);
  for (int round = 0; round < 5; ++round) {
    auto src = OpenQcow2(img);
    std::atomic<bool> ok{true};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::vector<uint8_t> b(4096);
        auto n = src->ReadAt(t * 100000, b);
        if (!n.ok() || std::memcmp(b.data(), ref.data() + t * 100000, 4096) != 0) ok = false;
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(ok);
    REQUIRE(src->decompressions() == 1);
  }
}

TEST_CASE("eight threads reading random ranges see the reference bytes") {
  TempDir dir;
  std::string raw = dir / "mixed.raw";
  MakeMixedRaw(raw, 16 * kSourceMiB, 9);
  for (bool compress : {false, true}) {
    DYNAMIC_SECTION("compressed " << compress) {
      auto img = Convert(dir, raw, "t.qcow2", "cluster_size=4096", compress);
      auto ref = QemuRawOf(img, dir);
      DiskViewOptions small;  // small caches so threads also evict
      small.memory_cache_bytes = 256 * 1024;
      small.l2_cache_bytes = 64 * 1024;
      auto src = OpenQcow2(img, small);
      std::atomic<int> bad{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
          std::mt19937_64 rng(100 + t);
          std::vector<uint8_t> b;
          for (int i = 0; i < 150; ++i) {
            uint64_t off = rng() % ref.size(), len = 1 + rng() % 70000;
            b.resize(len);
            auto n = src->ReadAt(off, b);
            uint64_t want = std::min<uint64_t>(len, ref.size() - off);
            if (!n.ok() || *n != want || std::memcmp(b.data(), ref.data() + off, want) != 0) ++bad;
          }
        });
      }
      for (auto& th : threads) th.join();
      REQUIRE(bad == 0);
    }
  }
}

TEST_CASE("extents merge neighbouring clusters into large runs") {
  TempDir dir;
  std::string img = dir / "runs.qcow2";
  Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + img + "' 64M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x44 1M 3M' -c 'write -z 2M 64k' '" + img + "'");
  auto src = OpenQcow2(img);
  size_t count = 0;
  ExtentHoleSectors(*src, &count);
  REQUIRE(count == 5);  // hole, data, zero, data, hole
  auto e = src->ExtentAt(1 * kSourceMiB + 1);
  REQUIRE(e.ok());
  REQUIRE_FALSE(e->hole);
  REQUIRE(e->offset == 1 * kSourceMiB + 1);
  REQUIRE(e->length == 1 * kSourceMiB - 1);
  auto tail = src->ExtentAt(10 * kSourceMiB);
  REQUIRE(tail.ok());
  REQUIRE(tail->hole);
  REQUIRE(tail->offset + tail->length == 64 * kSourceMiB);
}

TEST_CASE("a large read of scattered clusters prefetches their host ranges, and Prefetch forwards them") {
  TempDir dir;
  std::string img = dir / "scatter.qcow2";
  Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + img + "' 16M");
  // Written backwards, so guest-adjacent clusters are not host-adjacent.
  Sh("qemu-io -f qcow2 -c 'write -P 1 12k 4k' -c 'write -P 2 8k 4k' -c 'write -P 3 4k 4k' -c 'write -P 4 0 4k' '" +
     img + "'");
  auto file = FileSource::Open(img);
  REQUIRE(file.ok());
  auto counting = std::make_shared<CountingSource>(*file);
  auto src = Qcow2Source::Open(counting, {});
  REQUIRE(src.ok());
  {
    // Open hints the L2 tables (one here, one cluster) to the source below.
    std::lock_guard<std::mutex> lock(counting->mu);
    REQUIRE(counting->prefetches.size() == 1);
    CHECK(counting->prefetches[0].second == 4096);
    CHECK(counting->prefetches[0].first % 4096 == 0);
    counting->prefetches.clear();
  }
  std::vector<uint8_t> small(8192);
  REQUIRE((*src)->ReadAt(0, small).ok());  // small reads go straight through
  REQUIRE(counting->prefetches.empty());
  std::vector<uint8_t> buf(65536);
  REQUIRE((*src)->ReadAt(0, buf).ok());
  REQUIRE(buf[0] == 4);
  REQUIRE(buf[12288] == 1);
  {
    std::lock_guard<std::mutex> lock(counting->mu);
    REQUIRE(counting->prefetches.size() == 4);
    counting->prefetches.clear();
  }
  (*src)->Prefetch(4096, 8192);  // the L2 table is cached now
  std::lock_guard<std::mutex> lock(counting->mu);
  REQUIRE(counting->prefetches.size() == 2);
  for (auto& [off, len] : counting->prefetches) {
    REQUIRE(len == 4096);
    REQUIRE(off % 4096 == 0);
  }
}

TEST_CASE("OpenDiskView serves qcow2 through Qcow2Source and raw as the file itself") {
  TempDir dir;
  std::string img = dir / "v.qcow2";
  Sh("qemu-img create -f qcow2 '" + img + "' 8M");
  auto file = FileSource::Open(img);
  REQUIRE(file.ok());
  auto view = OpenDiskView(*file, {});
  REQUIRE(view.ok());
  REQUIRE((*view)->size() == 8 * kSourceMiB);
  REQUIRE(dynamic_cast<const Qcow2Source*>(view->get()) != nullptr);

  std::string raw = dir / "v.raw";
  MakeMixedRaw(raw, 1 * kSourceMiB, 10);
  auto raw_file = FileSource::Open(raw);
  REQUIRE(raw_file.ok());
  auto raw_view = OpenDiskView(*raw_file, {});
  REQUIRE(raw_view.ok());
  REQUIRE(raw_view->get() == raw_file->get());
}

TEST_CASE("clusters kept in a cluster store are read back by a later source without the image's bytes") {
  TempDir dir;
  auto [img, ref] = CompressedMixedImage(dir, 4 * kSourceMiB);
  auto store = MakeMemoryDecodedStore(65536);
  DiskViewOptions options;
  int asked = 0;
  options.cluster_store = [&](uint32_t cluster_size) {
    ++asked;
    REQUIRE(cluster_size == 65536);
    return store;
  };

  auto first = OpenQcow2(img, options);
  REQUIRE(first->has_cluster_store());
  RequireSameBytes(*first, ref);
  const uint64_t inflated = first->decompressions();
  REQUIRE(inflated > 0);  // the image has compressed clusters
  REQUIRE(first->stored_cluster_reads() == 0);
  uint64_t kept = 0;
  for (uint64_t i = 0; i < ref.size() / 65536; ++i) kept += store->Contains(i);
  REQUIRE(kept == inflated);

  // A second source (a later mount): the same bytes, nothing inflated, and
  // the compressed clusters' bytes are not read from the image at all.
  auto file = FileSource::Open(img);
  REQUIRE(file.ok());
  auto counting = std::make_shared<CountingSource>(*file);
  auto second = Qcow2Source::Open(counting, options);
  REQUIRE(second.ok());
  const uint64_t metadata_bytes = counting->bytes.load();
  RequireSameBytes(**second, ref);
  // What it read besides: L2 tables and uncompressed data clusters only.
  const uint64_t data_clusters = (ref.size() / 65536) - inflated;
  REQUIRE(counting->bytes.load() - metadata_bytes <= (data_clusters + 8) * 65536);
  RequireRandomReadsMatch(**second, ref, 40, 7);
  REQUIRE((*second)->decompressions() == 0);
  REQUIRE((*second)->stored_cluster_reads() == inflated);
  REQUIRE(asked == 2);
}

TEST_CASE("a cluster store of another chunk size is not used") {
  TempDir dir;
  auto [img, ref] = CompressedMixedImage(dir, 2 * kSourceMiB);
  auto store = MakeMemoryDecodedStore(1 << 20);
  DiskViewOptions options;
  options.cluster_store = [&](uint32_t) { return store; };
  auto src = OpenQcow2(img, options);
  REQUIRE_FALSE(src->has_cluster_store());
  RequireSameBytes(*src, ref);
  REQUIRE(src->decompressions() > 0);
  REQUIRE_FALSE(store->Contains(0));
}
