#include "base/write_behind_store.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace ocifs;

namespace {

// A memory store whose Puts wait while `held` is set.
class HeldStore final : public DecodedChunkStore {
 public:
  explicit HeldStore(uint32_t chunk_size) : inner_(MakeMemoryDecodedStore(chunk_size)) {}
  uint32_t chunk_size() const override { return inner_->chunk_size(); }
  Result<bool> Get(uint64_t i, std::span<uint8_t> out) const override { return inner_->Get(i, out); }
  Status Put(uint64_t i, std::span<const uint8_t> data) const override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !held_; });
    ++puts;
    return inner_->Put(i, data);
  }
  bool Contains(uint64_t i) const override { return inner_->Contains(i); }
  void Hold(bool held) {
    {
      std::lock_guard lock(mu_);
      held_ = held;
    }
    cv_.notify_all();
  }
  mutable std::atomic<int> puts{0};

 private:
  std::shared_ptr<DecodedChunkStore> inner_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool held_ = false;
};

std::vector<uint8_t> Chunk(uint8_t fill, size_t n = 4096) { return std::vector<uint8_t>(n, fill); }

}  // namespace

TEST_CASE("a chunk put is readable at once and reaches the store below") {
  auto inner = std::make_shared<HeldStore>(4096);
  inner->Hold(true);
  WriteBehindStore store(inner, 64 << 10);
  REQUIRE(store.Put(3, Chunk(0x33)).ok());
  // Queued, not written: Get and Contains see it anyway.
  REQUIRE(store.Contains(3));
  REQUIRE_FALSE(inner->Contains(3));
  std::vector<uint8_t> out(4096);
  auto hit = store.Get(3, out);
  REQUIRE(hit.ok());
  REQUIRE(*hit);
  REQUIRE(out == Chunk(0x33));
  auto wrong_size = store.Get(3, std::span<uint8_t>(out).first(100));
  REQUIRE(wrong_size.ok());
  REQUIRE_FALSE(*wrong_size);
  // PutShared queues the caller's buffer itself.
  auto shared = std::make_shared<const std::vector<uint8_t>>(Chunk(0x44));
  REQUIRE(store.PutShared(4, shared).ok());
  REQUIRE(shared.use_count() == 2);
  inner->Hold(false);
  store.Flush();
  REQUIRE(shared.use_count() == 1);
  REQUIRE(inner->Contains(3));
  REQUIRE(inner->Contains(4));
  REQUIRE(inner->puts == 2);
  hit = store.Get(3, out);
  REQUIRE((hit.ok() && *hit));
}

TEST_CASE("puts beyond the queue's bound are dropped and counted, never block") {
  auto inner = std::make_shared<HeldStore>(4096);
  inner->Hold(true);
  WriteBehindStore store(inner, 4 * 4096);
  // The writer takes chunk 0 and blocks in the store below; 4 more fit in the queue.
  for (uint64_t i = 0; i < 10; ++i) REQUIRE(store.Put(i, Chunk(static_cast<uint8_t>(i))).ok());
  REQUIRE(store.dropped() >= 5);
  REQUIRE(store.dropped() <= 6);
  inner->Hold(false);
  store.Flush();
  REQUIRE(inner->puts == static_cast<int>(10 - store.dropped()));
  for (uint64_t i = 0; i < 10 - store.dropped(); ++i) REQUIRE(inner->Contains(i));
}

TEST_CASE("a chunk larger than the chunk size is refused; a second put of a queued chunk is ignored") {
  auto inner = std::make_shared<HeldStore>(4096);
  inner->Hold(true);
  WriteBehindStore store(inner, 64 << 10);
  REQUIRE(store.Put(1, Chunk(1, 4097)).code() == Code::kInvalidArgument);
  REQUIRE(store.Put(2, Chunk(2)).ok());
  REQUIRE(store.Put(2, Chunk(9)).ok());
  inner->Hold(false);
  store.Flush();
  std::vector<uint8_t> out(4096);
  auto hit = inner->Get(2, out);
  REQUIRE((hit.ok() && *hit));
  REQUIRE(out == Chunk(2));
  REQUIRE(inner->puts == 1);
}

TEST_CASE("destroying the store writes what is queued") {
  auto inner = std::make_shared<HeldStore>(4096);
  inner->Hold(true);
  std::thread release;
  {
    WriteBehindStore store(inner, 64 << 10);
    for (uint64_t i = 0; i < 5; ++i) REQUIRE(store.Put(i, Chunk(7)).ok());
    release = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      inner->Hold(false);
    });
  }  // waits for the held writer, then for the rest of the queue
  release.join();
  REQUIRE(inner->puts == 5);
}

TEST_CASE("concurrent puts and gets see whole chunks") {
  auto inner = std::make_shared<HeldStore>(4096);
  WriteBehindStore store(inner, 16 * 4096);
  std::atomic<bool> ok{true};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> out(4096);
      for (uint64_t i = 0; i < 200; ++i) {
        const uint64_t index = (i * 7 + t) % 64;
        if (!store.Put(index, Chunk(static_cast<uint8_t>(index))).ok()) ok = false;
        auto hit = store.Get(index, out);
        if (!hit.ok() || (*hit && out != Chunk(static_cast<uint8_t>(index)))) ok = false;
      }
    });
  }
  for (auto& th : threads) th.join();
  store.Flush();
  REQUIRE(ok);
}
