#include "cache/kept_piece_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cache/cache_key.h"
#include "cache/cache_test_util.h"
#include "cache/chunk_format.h"
#include "cache/kept_piece_format.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kPiece = 64 << 10;
const std::string kDiskKey = Digest('d') + ":raw-chunks-400";

std::shared_ptr<ChunkCache> OpenKeptCache(const std::string& dir, uint64_t max_bytes = 1ull << 30) {
  auto cache = ChunkCache::Open({.dir = dir, .max_bytes = max_bytes, .chunk_size = kPiece});
  REQUIRE(cache.ok());
  return *cache;
}

std::shared_ptr<KeptPieceFile> OpenKept(std::shared_ptr<ChunkCache> cache, uint32_t piece = kPiece) {
  auto file = KeptPieceFile::Open(std::move(cache), kDiskKey, piece);
  REQUIRE(file.ok());
  return *file;
}

void Keep(const KeptPieceFile& file, uint64_t index, size_t length = kPiece) {
  REQUIRE(file.Put(index, Pattern(index, length)).ok());
}

// Whether piece `index` is served, and with its right bytes.
bool Has(const KeptPieceFile& file, uint64_t index, size_t length = kPiece) {
  std::vector<uint8_t> out(length);
  auto hit = file.Get(index, out);
  REQUIRE(hit.ok());
  if (*hit) REQUIRE(out == Pattern(index, length));
  return *hit;
}

// Overwrites `bytes` at `offset` of the file, as a damaged disk would.
void Scribble(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

uint64_t SharedUsageBytes(const std::string& dir) {
  uint64_t v = 0;
  std::ifstream(dir + "/usage", std::ios::binary).read(reinterpret_cast<char*>(&v), sizeof v);
  return v;
}

}  // namespace

TEST_CASE("kept piece file: a kept piece reads back, and nothing else does") {
  TempDir dir;
  auto file = OpenKept(OpenKeptCache(dir.path()));
  Keep(*file, 3);
  Keep(*file, 300);                 // another group
  Keep(*file, 301, 5000);           // a short last piece
  CHECK(file->Contains(3));
  CHECK(Has(*file, 3));
  CHECK(Has(*file, 300));
  CHECK(Has(*file, 301, 5000));
  CHECK_FALSE(file->Contains(4));
  CHECK_FALSE(Has(*file, 4));
  std::vector<uint8_t> other_length(4096);
  CHECK_FALSE(*file->Get(3, other_length));  // stored with another length: a miss
  CHECK(file->stats().kept == 3);
  CHECK(file->stats().hits == 3);
  CHECK(std::filesystem::exists(dir.path() + "/kept/" + kDiskKey));
  CHECK_FALSE(file->Put(1, std::vector<uint8_t>(kPiece + 1)).ok());
  CHECK_FALSE(file->Put(KeptPieceFile::kMaxPieces, Pattern(0, kPiece)).ok());
}

TEST_CASE("kept piece file: one sparse file holds the pieces where the format says") {
  TempDir dir;
  auto file = OpenKept(OpenKeptCache(dir.path()));
  Keep(*file, 257);
  std::ifstream in(file->path(), std::ios::binary);
  std::vector<uint8_t> data(kPiece);
  in.seekg(static_cast<std::streamoff>(KeptDataOffset(kPiece, 257)));
  in.read(reinterpret_cast<char*>(data.data()), kPiece);
  CHECK(data == Pattern(257, kPiece));
  std::array<uint8_t, kKeptEntrySize> entry;
  in.seekg(static_cast<std::streamoff>(KeptEntryOffset(kPiece, 257)));
  in.read(reinterpret_cast<char*>(entry.data()), entry.size());
  auto decoded = DecodeKeptEntry(CacheKeyHash(kDiskKey), 257, kPiece, entry);
  REQUIRE(decoded);
  CHECK(decoded->length == kPiece);
  CHECK_FALSE(DecodeKeptEntry(CacheKeyHash(kDiskKey) + 1, 257, kPiece, entry));  // another key's entry
  CHECK_FALSE(DecodeKeptEntry(CacheKeyHash(kDiskKey), 1, kPiece, entry));        // another slot's
  struct stat st;
  REQUIRE(::stat(file->path().c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 2 * kPiece);  // sparse: group 0 holds nothing
}

TEST_CASE("kept piece file: a second opener sees the pieces the first kept") {
  TempDir dir;
  auto first = OpenKept(OpenKeptCache(dir.path()));
  for (uint64_t i : {0, 1, 255, 256, 1000}) Keep(*first, i);
  auto second = OpenKept(OpenKeptCache(dir.path()));  // another process, as far as the file knows
  for (uint64_t i : {0, 1, 255, 256, 1000}) CHECK(Has(*second, i));
  CHECK_FALSE(second->Contains(2));
  Keep(*second, 2);
  CHECK(Has(*OpenKept(OpenKeptCache(dir.path())), 2));
}

TEST_CASE("kept piece file: a piece another opener keeps later is found on disk after a miss") {
  TempDir dir;
  auto first = OpenKept(OpenKeptCache(dir.path()));
  auto second = OpenKept(OpenKeptCache(dir.path()));  // opened before the piece was kept
  Keep(*first, 300);
  std::vector<uint8_t> out(kPiece);
  auto hit = second->Get(300, out);
  REQUIRE(hit.ok());
  CHECK_FALSE(*hit);  // Get knows only what was there at open
  hit = second->GetStoredByAnyone(300, out);
  REQUIRE(hit.ok());
  CHECK(*hit);
  CHECK(out == Pattern(300, kPiece));
  CHECK(second->stats().found_later == 1);
  CHECK(Has(*second, 300));  // known from now on
  std::unique_ptr<DecodedChunkStore::MakeClaim> claim;
  hit = second->GetOrClaim(301, out, &claim);
  REQUIRE(hit.ok());
  CHECK_FALSE(*hit);
  CHECK(claim != nullptr);  // the caller makes piece 301
}

TEST_CASE("kept piece file: a file an older build created (only its 32-byte header) opens and claims") {
  TempDir dir;
  auto cache = OpenKeptCache(dir.path());
  const std::string path = cache->KeptPath(kDiskKey);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::array<uint8_t, kKeptHeaderSize> header;
  EncodeKeptHeader({kPiece, CacheKeyHash(kDiskKey)}, header);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(header.data()), header.size());
  }
  auto file = OpenKept(cache);
  std::vector<uint8_t> out(kPiece);
  std::unique_ptr<DecodedChunkStore::MakeClaim> claim;
  auto hit = file->GetOrClaim(9, out, &claim);
  REQUIRE(hit.ok());
  CHECK_FALSE(*hit);
  CHECK(claim != nullptr);
  Keep(*file, 9);
  claim.reset();
  CHECK(Has(*OpenKept(cache), 9));  // not replaced: the same file, with its piece
}

TEST_CASE("kept piece file: processes making the same missing pieces at once make each one once") {
  TempDir dir;
  constexpr uint64_t kPieces = 64;
  // Counts shared with the children: a piece is counted where it is made.
  void* mem = ::mmap(nullptr, kPieces * sizeof(std::atomic<uint32_t>), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(mem != MAP_FAILED);
  auto* made = new (mem) std::atomic<uint32_t>[kPieces]();
  std::vector<pid_t> children;
  for (int p = 0; p < 3; ++p) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto cache = ChunkCache::Open({.dir = dir.path(), .max_bytes = 1ull << 30, .chunk_size = kPiece});
      if (!cache.ok()) ::_exit(2);
      auto file = KeptPieceFile::Open(*cache, kDiskKey, kPiece);
      if (!file.ok()) ::_exit(3);
      // Two threads per process, all in the same order: every piece is wanted
      // by six makers at about the same time, as by the mounts of one disk.
      auto run = [&] {
        std::vector<uint8_t> out(kPiece);
        for (uint64_t i = 0; i < kPieces; ++i) {
          std::unique_ptr<DecodedChunkStore::MakeClaim> claim;
          auto hit = (*file)->Get(i, out);
          if (hit.ok() && !*hit) hit = (*file)->GetOrClaim(i, out, &claim);
          if (!hit.ok()) return false;
          if (!*hit) {
            made[i].fetch_add(1);
            std::this_thread::sleep_for(std::chrono::milliseconds(3));  // decompressing
            out = Pattern(i, kPiece);
            if (!(*file)->Put(i, out).ok()) return false;
          } else if (out != Pattern(i, kPiece)) {
            return false;
          }
        }
        return true;
      };
      bool ok2 = false;
      std::thread other([&] { ok2 = run(); });
      bool ok1 = run();
      other.join();
      ::_exit(ok1 && ok2 && (*file)->stats().claim_timeouts == 0 ? 0 : 1);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int wstatus = 0;
    REQUIRE(::waitpid(child, &wstatus, 0) == child);
    CHECK((WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0));
  }
  for (uint64_t i = 0; i < kPieces; ++i) {
    INFO("piece " << i);
    CHECK(made[i].load() == 1);
  }
  ::munmap(mem, kPieces * sizeof(std::atomic<uint32_t>));
}

TEST_CASE("kept piece file: a piece that fails its CRC is a miss and is forgotten") {
  TempDir dir;
  auto file = OpenKept(OpenKeptCache(dir.path()));
  Keep(*file, 7);
  Keep(*file, 8);
  Scribble(file->path(), KeptDataOffset(kPiece, 7) + 100, {0xde, 0xad});
  CHECK_FALSE(Has(*file, 7));
  CHECK_FALSE(file->Contains(7));
  CHECK(file->stats().corrupt_dropped == 1);
  CHECK(Has(*file, 8));
  // Its entry is cleared on disk: a later opener does not trust it either.
  auto later = OpenKept(OpenKeptCache(dir.path()));
  CHECK_FALSE(later->Contains(7));
  CHECK(later->Contains(8));
  Keep(*later, 7);  // and it can be kept again
  CHECK(Has(*later, 7));
}

TEST_CASE("kept piece file: a torn entry, a truncated file or a bad header is never served") {
  TempDir dir;
  {
    auto file = OpenKept(OpenKeptCache(dir.path()));
    for (uint64_t i = 0; i < 4; ++i) Keep(*file, i);
  }
  const std::string path = dir.path() + "/kept/" + kDiskKey;
  SECTION("a damaged table entry") {
    Scribble(path, KeptEntryOffset(kPiece, 1) + 4, {0x01});
    auto file = OpenKept(OpenKeptCache(dir.path()));
    CHECK_FALSE(file->Contains(1));
    CHECK(Has(*file, 0));
    CHECK(Has(*file, 2));
  }
  SECTION("a file cut in the middle of a piece") {
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(KeptDataOffset(kPiece, 3) + 10)) == 0);
    auto file = OpenKept(OpenKeptCache(dir.path()));
    CHECK_FALSE(Has(*file, 3));
    CHECK_FALSE(file->Contains(3));
    CHECK(Has(*file, 2));
  }
  SECTION("a damaged header: the file is replaced by an empty one") {
    Scribble(path, 0, {'X'});
    auto file = OpenKept(OpenKeptCache(dir.path()));
    for (uint64_t i = 0; i < 4; ++i) CHECK_FALSE(file->Contains(i));
    Keep(*file, 1);
    CHECK(Has(*OpenKept(OpenKeptCache(dir.path())), 1));
  }
  SECTION("a file of another piece size is replaced") {
    auto file = OpenKept(OpenKeptCache(dir.path()), 128 << 10);
    CHECK_FALSE(file->Contains(0));
    CHECK(file->chunk_size() == (128u << 10));
  }
  SECTION("an empty file") {
    REQUIRE(::truncate(path.c_str(), 0) == 0);
    auto file = OpenKept(OpenKeptCache(dir.path()));
    CHECK_FALSE(file->Contains(0));
    Keep(*file, 0);
    CHECK(Has(*file, 0));
  }
}

TEST_CASE("kept piece file: threads keeping and reading pieces at once all see the right bytes") {
  TempDir dir;
  auto file = OpenKept(OpenKeptCache(dir.path()));
  auto other = OpenKept(OpenKeptCache(dir.path()));  // a second process keeping the same disk
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const KeptPieceFile& f = t % 2 ? *file : *other;
      std::vector<uint8_t> out(kPiece);
      for (uint64_t round = 0; round < 200; ++round) {
        const uint64_t index = (round * 7 + static_cast<uint64_t>(t) * 3) % 600;
        auto hit = f.Get(index, out);
        if (!hit.ok() || (*hit && out != Pattern(index, kPiece))) ++bad;
        if (!hit.ok() || !*hit) {
          if (!f.Put(index, Pattern(index, kPiece)).ok()) ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == 0);
  CHECK(file->stats().corrupt_dropped == 0);
  CHECK(other->stats().corrupt_dropped == 0);
  auto later = OpenKept(OpenKeptCache(dir.path()));
  for (uint64_t i = 0; i < 600; ++i) {
    if (later->Contains(i)) CHECK(Has(*later, i));
  }
}

TEST_CASE("kept piece file: its blocks count in the cache bound, and eviction takes it whole") {
  TempDir dir;
  const uint64_t max_bytes = 2ull << 20;
  auto cache = OpenKeptCache(dir.path(), max_bytes);
  auto file = OpenKept(cache);
  for (uint64_t i = 0; i < 8; ++i) Keep(*file, i);
  const uint64_t kept_bytes = kKeptHeaderBlock + kKeptTableBlock + 8 * kPiece;
  CHECK(SharedUsageBytes(dir.path()) == kept_bytes);
  // A scan (another process opening the cache) counts the same from st_blocks.
  auto rescanned = OpenKeptCache(dir.path(), max_bytes);
  CHECK(SharedUsageBytes(dir.path()) == kept_bytes);

  // Older than every chunk: the least recently used unit.
  struct timespec old[2] = {{1'000'000, 0}, {1'000'000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, file->path().c_str(), old, 0) == 0);
  for (uint64_t i = 0; SharedUsageBytes(dir.path()) + kPiece + kChunkHeaderSize <= max_bytes; ++i) {
    REQUIRE(cache->Store(kKey, i, Pattern(i, kPiece)).ok());
  }
  CHECK(std::filesystem::exists(file->path()));
  REQUIRE(cache->Store(kKey, 1000, Pattern(1000, kPiece)).ok());  // over the bound
  CHECK(cache->stats().evictions >= 1);
  CHECK_FALSE(std::filesystem::exists(file->path()));
  CHECK(SharedUsageBytes(dir.path()) <= max_bytes);
  CHECK(ChunkBytesOnDisk(dir.path()) == SharedUsageBytes(dir.path()));  // the kept file's bytes went too

  // The next Put starts a new file, which holds only what is kept from then on.
  Keep(*file, 9);
  CHECK(std::filesystem::exists(file->path()));
  CHECK_FALSE(file->Contains(0));
  CHECK(Has(*file, 9));
  CHECK(Has(*OpenKept(OpenKeptCache(dir.path(), max_bytes)), 9));
}

TEST_CASE("kept piece file: a crashed creator's temp file is removed by a later scan") {
  TempDir dir;
  OpenKeptCache(dir.path());
  const std::string tmp = dir.path() + "/kept/.tmp-1-0";
  std::ofstream(tmp) << "x";
  struct timespec old[2] = {{1'000'000, 0}, {1'000'000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, tmp.c_str(), old, 0) == 0);
  OpenKeptCache(dir.path());
  CHECK_FALSE(std::filesystem::exists(tmp));
}

TEST_CASE("kept piece file: pieces of 4 KiB (a profile's units) keep and read back; smaller or odd sizes are refused") {
  TempDir dir;
  auto cache = OpenKeptCache(dir.path());
  auto fine = OpenKept(cache, 4096);
  REQUIRE(fine->Put(3, Pattern(3, 4096)).ok());
  REQUIRE(fine->Put(300, Pattern(300, 100)).ok());  // a blob's short last piece
  std::vector<uint8_t> out(4096);
  auto hit = fine->Get(3, out);
  REQUIRE(hit.ok());
  CHECK(*hit);
  CHECK(out == Pattern(3, 4096));
  out.resize(100);
  hit = fine->Get(300, out);
  REQUIRE(hit.ok());
  CHECK(*hit);
  CHECK(out == Pattern(300, 100));
  CHECK(KeptPieceFile::Open(cache, kDiskKey, 2048).status().code() == Code::kInvalidArgument);
  CHECK(KeptPieceFile::Open(cache, kDiskKey, 12288).status().code() == Code::kInvalidArgument);
  CHECK(KeptPieceFile::Open(cache, kDiskKey, 32u << 20).status().code() == Code::kInvalidArgument);
}
