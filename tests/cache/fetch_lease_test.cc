// The cross-process single flight: ChunkCaches sharing one directory (as
// separate instances, or separate processes via fork) fetch each chunk once;
// a dead lease owner blocks no one, a stalled one only for the bound.
#include "cache/fetch_lease.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <latch>
#include <random>
#include <thread>

#include "cache/cache_test_util.h"
#include "cache/chunk_cache.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

constexpr uint32_t kLeaseChunk = 64 << 10;
constexpr uint64_t kLeaseChunks = 48;

std::shared_ptr<ChunkCache> OpenLeaseCache(const std::string& dir, uint32_t lease_wait_ms = 60'000) {
  auto cache = ChunkCache::Open({.dir = dir, .max_bytes = 1ull << 30, .chunk_size = kLeaseChunk, .lease_wait_ms = lease_wait_ms});
  REQUIRE(cache.ok());
  return *cache;
}

// Reads chunks [first, first + count) through cache->ReadChunks with a fetch
// that counts, per chunk, how often it was fetched (counts: kLeaseChunks
// atomics, possibly in shared memory) and takes a little while (so fetches
// overlap). True if every chunk read back right.
bool ReadRange(ChunkCache& cache, uint64_t first, uint64_t count, std::atomic<uint32_t>* counts) {
  std::vector<uint8_t> buf(count * kLeaseChunk);
  std::vector<std::span<uint8_t>> outs;
  for (uint64_t i = 0; i < count; ++i) outs.emplace_back(buf.data() + i * kLeaseChunk, kLeaseChunk);
  Status st = cache.ReadChunks(kKey, first, outs, [&](uint64_t from, std::span<uint8_t> out) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    for (uint64_t i = 0; i < out.size() / kLeaseChunk; ++i) {
      counts[from + i].fetch_add(1);
      auto p = Pattern(from + i, kLeaseChunk);
      std::copy(p.begin(), p.end(), out.begin() + static_cast<ptrdiff_t>(i * kLeaseChunk));
    }
    return Status::Ok();
  });
  if (!st.ok()) return false;
  for (uint64_t i = 0; i < count; ++i) {
    if (!std::equal(outs[i].begin(), outs[i].end(), Pattern(first + i, kLeaseChunk).begin())) return false;
  }
  return true;
}

// Random overlapping ranges over all kLeaseChunks chunks, then the whole range.
bool ReadAllInPieces(ChunkCache& cache, uint64_t seed, std::atomic<uint32_t>* counts) {
  std::mt19937_64 rng(seed);
  for (int k = 0; k < 12; ++k) {
    uint64_t first = rng() % kLeaseChunks;
    uint64_t count = 1 + rng() % std::min<uint64_t>(8, kLeaseChunks - first);
    if (!ReadRange(cache, first, count, counts)) return false;
  }
  return ReadRange(cache, 0, kLeaseChunks, counts);
}

// A child process that takes the lease of (kKey, index), writes one byte to
// `ready`, and sleeps until killed.
pid_t HoldLeaseInChild(const std::string& dir, uint64_t index) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto leases = FetchLeases::Open(dir);
    if (!leases.ok()) ::_exit(2);
    FetchLeases::Lease lease = (*leases)->TryAcquire(kKey, index);
    if (!lease.held()) ::_exit(3);
    char c = 1;
    if (::write(fds[1], &c, 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(fds[1]);
  char c = 0;
  REQUIRE(::read(fds[0], &c, 1) == 1);
  ::close(fds[0]);
  return child;
}

void KillAndReap(pid_t child) {
  ::kill(child, SIGKILL);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
}

}  // namespace

TEST_CASE("two chunk caches on one directory fetch each chunk once") {
  TempDir tmp;
  auto a = OpenLeaseCache(tmp.path());
  auto b = OpenLeaseCache(tmp.path());
  std::vector<std::atomic<uint32_t>> counts(kLeaseChunks);
  std::latch start(6);
  std::vector<int> ok(6, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      ok[t] = ReadAllInPieces(t % 2 ? *a : *b, 100 + t, counts.data());
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 6; ++t) CHECK(ok[t] == 1);
  for (uint64_t i = 0; i < kLeaseChunks; ++i) {
    INFO("chunk " << i);
    CHECK(counts[i].load() == 1);
  }
  CHECK(a->stats().fetched_bytes + b->stats().fetched_bytes == kLeaseChunks * kLeaseChunk);
  CHECK(a->stats().lease_timeouts + b->stats().lease_timeouts == 0);
}

TEST_CASE("three processes on one cache directory fetch each chunk once") {
  TempDir tmp;
  // Counts shared with the children: fetches are counted where they happen.
  void* mem = ::mmap(nullptr, kLeaseChunks * sizeof(std::atomic<uint32_t>), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(mem != MAP_FAILED);
  auto* counts = new (mem) std::atomic<uint32_t>[kLeaseChunks]();
  std::vector<pid_t> children;
  for (int p = 0; p < 3; ++p) {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto cache = ChunkCache::Open({.dir = tmp.path(), .max_bytes = 1ull << 30, .chunk_size = kLeaseChunk});
      if (!cache.ok()) ::_exit(2);
      // Two threads per process: in-process flights and leases together.
      int ok1 = 0, ok2 = 0;
      std::thread other([&] { ok2 = ReadAllInPieces(**cache, 200 + p, counts); });
      ok1 = ReadAllInPieces(**cache, 300 + p, counts);
      other.join();
      ::_exit(ok1 && ok2 && (*cache)->stats().lease_timeouts == 0 ? 0 : 1);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int wstatus = 0;
    REQUIRE(::waitpid(child, &wstatus, 0) == child);
    CHECK((WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0));
  }
  for (uint64_t i = 0; i < kLeaseChunks; ++i) {
    INFO("chunk " << i);
    CHECK(counts[i].load() == 1);
  }
  ::munmap(mem, kLeaseChunks * sizeof(std::atomic<uint32_t>));
}

TEST_CASE("read-ahead skips a chunk another cache is fetching and fetches the rest once") {
  TempDir tmp;
  auto a = OpenLeaseCache(tmp.path());
  auto b = OpenLeaseCache(tmp.path());
  std::vector<std::atomic<uint32_t>> counts(kLeaseChunks);
  auto fetch = [&](uint64_t from, std::span<uint8_t> out) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (uint64_t i = 0; i < out.size() / kLeaseChunk; ++i) {
      counts[from + i].fetch_add(1);
      auto p = Pattern(from + i, kLeaseChunk);
      std::copy(p.begin(), p.end(), out.begin() + static_cast<ptrdiff_t>(i * kLeaseChunk));
    }
    return Status::Ok();
  };
  std::vector<size_t> lengths(kLeaseChunks, kLeaseChunk);
  std::latch start(2);
  Result<uint64_t> ra = uint64_t{0}, rb = uint64_t{0};
  std::thread ta([&] { start.arrive_and_wait(); ra = a->FetchMissing(kKey, 0, lengths, 4, fetch); });
  std::thread tb([&] { start.arrive_and_wait(); rb = b->FetchMissing(kKey, 0, lengths, 4, fetch); });
  ta.join();
  tb.join();
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  CHECK(*ra + *rb == kLeaseChunks);
  for (uint64_t i = 0; i < kLeaseChunks; ++i) {
    INFO("chunk " << i);
    CHECK(counts[i].load() == 1);
    std::vector<uint8_t> out(kLeaseChunk);
    auto hit = a->Lookup(kKey, i, out);
    REQUIRE(hit.ok());
    CHECK(*hit);
    CHECK(out == Pattern(i, kLeaseChunk));
  }
}

TEST_CASE("a killed lease owner does not block a reader of its chunk") {
  TempDir tmp;
  auto cache = OpenLeaseCache(tmp.path(), /*lease_wait_ms=*/120'000);
  pid_t child = HoldLeaseInChild(tmp.path(), 5);
  std::atomic<int> calls{0};
  std::vector<uint8_t> out(kLeaseChunk);
  Status st;
  std::thread reader([&] {
    st = cache->Read(kKey, 5, out, [&](std::span<uint8_t> o) {
      ++calls;
      auto p = Pattern(5, kLeaseChunk);
      std::copy(p.begin(), p.end(), o.begin());
      return Status::Ok();
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(calls == 0);  // waiting for the owner
  const auto killed = std::chrono::steady_clock::now();
  KillAndReap(child);
  reader.join();
  // The kernel dropped the dead owner's flock: the reader went on at once, not after the bound.
  CHECK(std::chrono::steady_clock::now() - killed < std::chrono::seconds(60));
  REQUIRE(st.ok());
  CHECK(out == Pattern(5, kLeaseChunk));
  CHECK(calls == 1);
  CHECK(cache->stats().lease_waits == 1);
  CHECK(cache->stats().lease_timeouts == 0);
}

TEST_CASE("a stalled lease owner blocks a reader only for the bound") {
  TempDir tmp;
  auto cache = OpenLeaseCache(tmp.path(), /*lease_wait_ms=*/300);
  pid_t child = HoldLeaseInChild(tmp.path(), 7);
  std::vector<uint8_t> buf(3 * kLeaseChunk);
  std::vector<std::span<uint8_t>> outs{{buf.data(), kLeaseChunk}, {buf.data() + kLeaseChunk, kLeaseChunk},
                                       {buf.data() + 2 * kLeaseChunk, kLeaseChunk}};
  std::vector<uint64_t> fetched;
  Status st = cache->ReadChunks(kKey, 6, outs, [&](uint64_t from, std::span<uint8_t> out) {
    for (uint64_t i = 0; i < out.size() / kLeaseChunk; ++i) {
      fetched.push_back(from + i);
      auto p = Pattern(from + i, kLeaseChunk);
      std::copy(p.begin(), p.end(), out.begin() + static_cast<ptrdiff_t>(i * kLeaseChunk));
    }
    return Status::Ok();
  });
  KillAndReap(child);
  REQUIRE(st.ok());
  for (uint64_t i = 0; i < 3; ++i) CHECK(std::equal(outs[i].begin(), outs[i].end(), Pattern(6 + i, kLeaseChunk).begin()));
  std::sort(fetched.begin(), fetched.end());
  CHECK(fetched == std::vector<uint64_t>{6, 7, 8});
  CHECK(cache->stats().lease_timeouts >= 1);
}

TEST_CASE("fetch lease stripes are stable and spread consecutive chunks") {
  // The stripe is part of the on-disk contract (docs/cache-format.md): other processes compute it too.
  std::vector<uint32_t> seen;
  for (uint64_t i = 0; i < 64; ++i) {
    uint32_t s = FetchLeases::StripeOf(kKey, i);
    CHECK(s < FetchLeases::kStripes);
    CHECK(s == FetchLeases::StripeOf(kKey, i));
    seen.push_back(s);
  }
  std::sort(seen.begin(), seen.end());
  CHECK(std::unique(seen.begin(), seen.end()) - seen.begin() >= 60);
}
