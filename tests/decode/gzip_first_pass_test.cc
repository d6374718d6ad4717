// The gzip first pass's lease (DecoderOptions::pass_lease_path): a second
// source of the same layer whose pass finds the lease held adopts the index
// the holder saves instead of streaming the layer; when the holder dies
// without one, it streams the layer itself.
#include "decode/gzip_first_pass.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "base/file_lock.h"
#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/gzip_source.h"
#include "decode/sequential_reader.h"
#include "decode/shared_pass_progress.h"
#include "testing/counting_source.h"
#include "testing/gated_source.h"
#include "testing/layer_test_data.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::CountingSource;
using ocifs::testing::GatedSource;

namespace {

std::shared_ptr<GzipSource> FirstPassOpenGzip(ByteSourcePtr blob, const DecoderOptions& options) {
  auto source = GzipSource::Open(std::move(blob), options);
  REQUIRE(source.ok());
  return *source;
}

// Waits until someone else holds the lease at `path` (generous: a busy machine).
void WaitUntilHeld(const std::string& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    bool failed = false;
    UniqueFd fd = TryLockFile(path, &failed);
    REQUIRE_FALSE(failed);
    if (!fd.valid()) return;
    fd.reset();  // ours for a moment: the holder-to-be retries
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void CheckReads(const ByteSource& source, const std::vector<uint8_t>& data, int reads, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf(4096);
  for (int i = 0; i < reads; ++i) {
    uint64_t offset = rng() % (data.size() - buf.size());
    auto n = source.ReadAt(offset, buf);
    REQUIRE(n.ok());
    REQUIRE(*n == buf.size());
    REQUIRE(std::equal(buf.begin(), buf.end(), data.begin() + static_cast<ptrdiff_t>(offset)));
  }
}

DecoderOptions LeaseOptions(const ocifs::testing::TempDir& dir) {
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  options.index_path = dir.path() + "/layer.gzidx";
  options.pass_lease_path = dir.path() + "/layer.gzpass";
  return options;
}

}  // namespace

TEST_CASE("a gzip pass that finds the lease held adopts the holder's index instead of streaming the layer") {
  ocifs::testing::TempDir dir;
  const auto data = ocifs::testing::MakeLayerData(6 << 20, 31);
  const auto compressed = ocifs::testing::GzipMember(data, 6);
  const DecoderOptions options = LeaseOptions(dir);
  // The holder: its pass streams until the gate opens.
  auto gate = std::make_shared<GatedSource>(std::make_shared<MemorySource>(compressed), 64 << 10);
  auto holder = FirstPassOpenGzip(gate, options);
  WaitUntilHeld(options.pass_lease_path);
  // The follower: its pass waits for the lease; a read waits for the pass.
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
  auto follower = FirstPassOpenGzip(counted, options);
  std::vector<uint8_t> first(4096);
  Result<size_t> first_read = size_t{0};
  std::thread reader([&] { first_read = follower->ReadAt(data.size() - 10000, first); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(counted->returned.load() == 0);  // not streaming: waiting for the holder
  gate->Open();
  reader.join();
  REQUIRE(first_read.ok());
  REQUIRE(*first_read == first.size());
  CHECK(std::equal(first.begin(), first.end(), data.end() - 10000));
  REQUIRE(holder->WaitUntilIndexed().ok());
  REQUIRE(follower->WaitUntilIndexed().ok());
  CHECK(follower->size() == data.size());
  CHECK(follower->verifies_reads());  // the adopted index's checksums check the follower's reads
  {
    // One read so far: the index's tail check and that read's spans, not the layer.
    INFO("compressed bytes the follower read: " << counted->returned.load() << " of " << compressed.size());
    CHECK(counted->returned.load() < compressed.size() / 4);
  }
  CheckReads(*follower, data, 20, 32);
}

TEST_CASE("a gzip pass handed the lease its opener took streams with it and releases it once the index is saved") {
  ocifs::testing::TempDir dir;
  const auto data = ocifs::testing::MakeLayerData(3 << 20, 35);
  const auto compressed = ocifs::testing::GzipMember(data, 6);
  DecoderOptions options = LeaseOptions(dir);
  bool failed = false;
  options.pass_lease_taken = std::make_shared<UniqueFd>(TryLockFile(options.pass_lease_path, &failed));
  REQUIRE(options.pass_lease_taken->valid());
  auto gate = std::make_shared<GatedSource>(std::make_shared<MemorySource>(compressed), 64 << 10);
  auto counted = std::make_shared<CountingSource>(gate);
  auto source = FirstPassOpenGzip(counted, options);
  struct OpenAtExit {  // a failed check must not leave the pass held (its source's destructor waits for it)
    GatedSource& gate;
    ~OpenAtExit() { gate.Open(); }
  } open_at_exit{*gate};
  // The pass neither waits for the lease (its own) nor lets it go while it streams.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (counted->reads.load() == 0) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK_FALSE(TryLockFile(options.pass_lease_path, &failed).valid());
  CHECK_FALSE(failed);
  gate->Open();
  REQUIRE(source->WaitUntilIndexed().ok());
  CHECK(std::filesystem::exists(options.index_path));
  CHECK_FALSE(options.pass_lease_taken->valid());  // moved to the pass: this copy releases nothing
  // Released as the pass returns, just after it saved the index and finished: another
  // mount's pass (polling every 20 ms) then adopts the index.
  UniqueFd after;
  while (!(after = TryLockFile(options.pass_lease_path, &failed)).valid()) {
    REQUIRE_FALSE(failed);
    REQUIRE(std::chrono::steady_clock::now() < deadline + std::chrono::seconds(60));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CheckReads(*source, data, 20, 36);
}

TEST_CASE("a gzip source that loads a saved index releases the lease its opener took for a pass") {
  ocifs::testing::TempDir dir;
  const auto data = ocifs::testing::MakeLayerData(2 << 20, 37);
  const auto compressed = ocifs::testing::GzipMember(data, 6);
  DecoderOptions options = LeaseOptions(dir);
  {
    auto first = FirstPassOpenGzip(std::make_shared<MemorySource>(compressed), options);
    REQUIRE(first->WaitUntilIndexed().ok());
  }
  bool failed = false;
  options.pass_lease_taken = std::make_shared<UniqueFd>(TryLockFile(options.pass_lease_path, &failed));
  REQUIRE(options.pass_lease_taken->valid());  // the opener raced the index's save
  auto source = FirstPassOpenGzip(std::make_shared<MemorySource>(compressed), options);
  CHECK(source->loaded_from_file());
  CHECK_FALSE(options.pass_lease_taken->valid());
  UniqueFd free_now = TryLockFile(options.pass_lease_path, &failed);
  CHECK(free_now.valid());  // a pass elsewhere waiting for it is not held for this mount's life
  CheckReads(*source, data, 10, 38);
}

TEST_CASE("a gzip pass whose lease holder dies without an index streams the layer itself") {
  ocifs::testing::TempDir dir;
  const auto data = ocifs::testing::MakeLayerData(3 << 20, 33);
  const auto compressed = ocifs::testing::GzipMember(data, 6);
  const DecoderOptions options = LeaseOptions(dir);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    bool failed = false;
    UniqueFd held = TryLockFile(options.pass_lease_path, &failed);
    char c = held.valid() ? 1 : 0;
    if (::write(fds[1], &c, 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(fds[1]);
  char c = 0;
  REQUIRE(::read(fds[0], &c, 1) == 1);
  ::close(fds[0]);
  REQUIRE(c == 1);
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
  auto follower = FirstPassOpenGzip(counted, options);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(counted->returned.load() == 0);  // waiting for the holder
  ::kill(child, SIGKILL);
  int wstatus = 0;
  REQUIRE(::waitpid(child, &wstatus, 0) == child);
  REQUIRE(follower->WaitUntilIndexed().ok());  // took the lease over and streamed
  CHECK(counted->returned.load() >= compressed.size());
  CHECK(follower->size() == data.size());
  CHECK(std::filesystem::exists(options.index_path));
  CheckReads(*follower, data, 20, 34);
}

TEST_CASE("a gzip pass that follows another process's pass serves the reads behind it before that pass ends") {
  ocifs::testing::TempDir dir;
  const auto data = ocifs::testing::MakeLayerData(24 << 20, 35);
  const auto compressed = ocifs::testing::GzipMember(data, 6);
  REQUIRE(compressed.size() > (5 << 20));
  DecoderOptions options = LeaseOptions(dir);
  options.pass_progress_path = dir.path() + "/layer.gzprogress";
  options.decoded_store = MakeMemoryDecodedStore(64 << 10);  // as the cache's <digest>:decoded chunks
  // The holder: its pass streams the layer's first 4 MiB (one read), then waits at the gate.
  auto gate = std::make_shared<GatedSource>(std::make_shared<MemorySource>(compressed), 4 << 20);
  auto holder = FirstPassOpenGzip(gate, options);
  WaitUntilHeld(options.pass_lease_path);
  auto progress = SharedPassProgress::Open(options.pass_progress_path);
  REQUIRE(progress.ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*progress)->Load().count < 8) {  // 512 KiB published: the holder is past them
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
  auto follower = FirstPassOpenGzip(counted, options);
  // Behind the holder's progress: served while the holder's pass is held at the gate.
  std::vector<uint8_t> behind(200000);
  Result<size_t> n = follower->ReadAt(12345, behind);
  REQUIRE(n.ok());
  REQUIRE(*n == behind.size());
  CHECK(std::equal(behind.begin(), behind.end(), data.begin() + 12345));
  CHECK(counted->returned.load() == 0);  // copied from the holder's chunks, not inflated here
  CHECK(holder->size() == ByteSource::kUnknownSize);  // its pass is still held at the gate
  // Ahead of it (the layer's end): waits until the holder gets there.
  std::vector<uint8_t> ahead(4096);
  Result<size_t> ahead_read = size_t{0};
  std::atomic<bool> ahead_done{false};
  std::thread reader([&] {
    ahead_read = follower->ReadAt(data.size() - 5000, ahead);
    ahead_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_FALSE(ahead_done.load());
  gate->Open();
  reader.join();
  REQUIRE(ahead_read.ok());
  REQUIRE(*ahead_read == ahead.size());
  CHECK(std::equal(ahead.begin(), ahead.end(), data.end() - 5000));
  REQUIRE(holder->WaitUntilIndexed().ok());
  REQUIRE(follower->WaitUntilIndexed().ok());
  CHECK(follower->verifies_reads());
  CheckReads(*follower, data, 20, 36);
  {
    // After the adoption too, its reads copy the holder's chunks (checked by
    // the index's checksums): it inflated at most the layer's last span.
    INFO("compressed bytes the follower read: " << counted->returned.load() << " of " << compressed.size());
    CHECK(counted->returned.load() < compressed.size() / 4);
  }
}

TEST_CASE("a gzip pass that streams the layer publishes its kept chunks, and withdraws them if it fails") {
  ocifs::testing::TempDir dir;
  const auto data = ocifs::testing::MakeLayerData((2 << 20) + 1000, 37);
  auto compressed = ocifs::testing::GzipMember(data, 6);
  DecoderOptions options = LeaseOptions(dir);
  options.pass_progress_path = dir.path() + "/layer.gzprogress";
  options.decoded_store = MakeMemoryDecodedStore(64 << 10);
  auto progress = SharedPassProgress::Open(options.pass_progress_path);
  REQUIRE(progress.ok());
  {
    auto source = FirstPassOpenGzip(std::make_shared<MemorySource>(compressed), options);
    REQUIRE(source->WaitUntilIndexed().ok());
    // Every full chunk, in chunks of the store's size (the short last one is not published).
    CHECK((*progress)->Load() == SharedPassProgress::Published{64 << 10, data.size() / (64 << 10)});
  }
  // The same layer with a wrong CRC in its trailer: the pass fails at the end.
  std::filesystem::remove(options.index_path);
  compressed[compressed.size() - 8] ^= 0xff;
  auto source = FirstPassOpenGzip(std::make_shared<MemorySource>(compressed), options);
  CHECK_FALSE(source->WaitUntilIndexed().ok());
  CHECK((*progress)->Load().count == 0);
}

namespace {

// The union of the hints a source got, as the end of the run that starts at `start` (start: none).
uint64_t HintedFrom(const CountingSource& source, uint64_t start) {
  std::lock_guard lock(source.mu);
  auto hints = source.prefetches;
  std::sort(hints.begin(), hints.end());
  uint64_t end = start;
  for (const auto& [offset, length] : hints) {
    if (offset > end) break;
    end = std::max(end, offset + length);
  }
  return end;
}

}  // namespace

TEST_CASE("a gzip first pass keeps the compressed bytes ahead of it hinted, so they are fetched in flight") {
  const auto data = ocifs::testing::MakeLayerData(20 << 20, 41);
  const auto compressed = ocifs::testing::GzipMember(data, 6);
  REQUIRE(compressed.size() > SequentialReader::kDefaultPiece);
  DecoderOptions options;
  options.checkpoint_spacing = 256 << 10;
  options.pass_read_ahead = 4 << 20;
  auto counted = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
  auto source = FirstPassOpenGzip(counted, options);
  REQUIRE(source->WaitUntilIndexed().ok());
  // The window past the first read (small, alone) was hinted, in one run: the cache stage
  // fetches hinted bytes in the background while the pass inflates.
  CHECK(HintedFrom(*counted, SequentialReader::kFirstRead) >=
        std::min<uint64_t>(compressed.size(), SequentialReader::kFirstRead + options.pass_read_ahead));
  CheckReads(*source, data, 20, 42);

  SECTION("none without read-ahead") {
    options.pass_read_ahead = 0;
    auto plain = std::make_shared<CountingSource>(std::make_shared<MemorySource>(compressed));
    auto unhinted = FirstPassOpenGzip(plain, options);
    REQUIRE(unhinted->WaitUntilIndexed().ok());
    std::lock_guard lock(plain->mu);
    CHECK(plain->prefetches.empty());
  }
}
