#include "decode/pass_output_keeper.h"

#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "base/decoded_store.h"
#include <random>

namespace ocifs {
namespace {

std::vector<uint8_t> KeeperRandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);  // never a zero chunk
  return v;
}

// A store that refuses chunk `refused` and can forget chunks (a bounded cache).
class ForgetfulStore final : public DecodedChunkStore {
 public:
  explicit ForgetfulStore(uint32_t chunk_size) : inner_(MakeMemoryDecodedStore(chunk_size)) {}
  uint32_t chunk_size() const override { return inner_->chunk_size(); }
  Result<bool> Get(uint64_t i, std::span<uint8_t> out) const override {
    if (i == forgotten) return false;
    return inner_->Get(i, out);
  }
  Status Put(uint64_t i, std::span<const uint8_t> data) const override {
    ++puts;
    if (i == refused) return Unavailable("disk full");
    return inner_->Put(i, data);
  }
  bool Contains(uint64_t i) const override { return i != forgotten && inner_->Contains(i); }

  uint64_t refused = UINT64_MAX;
  uint64_t forgotten = UINT64_MAX;
  mutable int puts = 0;

 private:
  std::shared_ptr<DecodedChunkStore> inner_;
};

// Feeds `data` in pieces of `piece` bytes, as a pass's output callback does.
void FeedAll(PassOutputKeeper& keeper, const std::vector<uint8_t>& data, size_t piece) {
  for (size_t at = 0; at < data.size(); at += piece) {
    keeper.Feed(at, std::span(data).subspan(at, std::min(piece, data.size() - at)));
  }
}

TEST_CASE("a pass's kept output reads back exact, across chunks and in the short last chunk") {
  auto data = KeeperRandomBytes((3 << 16) + 5000, 7);  // 3 chunks of 64 KiB and a short one
  auto store = std::make_shared<ForgetfulStore>(64 << 10);
  PassOutputKeeper keeper(store);
  FeedAll(keeper, data, 10000);
  std::vector<uint8_t> out(100000);
  // Complete chunks are served before the pass ends; the short one only after Finish.
  REQUIRE(keeper.Copy(1000, std::span(out).first(70000)));
  CHECK(std::equal(out.begin(), out.begin() + 70000, data.begin() + 1000));
  CHECK_FALSE(keeper.Copy(data.size() - 100, std::span(out).first(100)));
  keeper.Finish(data.size());
  REQUIRE(keeper.Copy(data.size() - 100000, out));
  CHECK(std::equal(out.begin(), out.end(), data.end() - 100000));
  CHECK(keeper.stored_chunks() == 4);
}

TEST_CASE("all-zero chunks are noted, not stored, and read as zeros") {
  std::vector<uint8_t> data(4 << 16, 0);
  std::fill_n(data.begin() + (2 << 16) + 17, 3, uint8_t{9});  // chunk 2 holds data
  auto store = std::make_shared<ForgetfulStore>(64 << 10);
  PassOutputKeeper keeper(store);
  FeedAll(keeper, data, 1 << 20);
  keeper.Finish(data.size());
  CHECK(store->puts == 1);
  std::vector<uint8_t> out(data.size(), 0xee);
  REQUIRE(keeper.Copy(0, out));
  CHECK(out == data);
}

TEST_CASE("a chunk the store refused or dropped is not served; the others are") {
  auto data = KeeperRandomBytes(4 << 16, 8);
  auto store = std::make_shared<ForgetfulStore>(64 << 10);
  store->refused = 1;
  PassOutputKeeper keeper(store);
  FeedAll(keeper, data, 4096);
  keeper.Finish(data.size());
  std::vector<uint8_t> out(1 << 16);
  CHECK_FALSE(keeper.Copy(1 << 16, out));
  CHECK_FALSE(keeper.Copy((1 << 16) - 10, std::span(out).first(20)));  // touches chunk 1
  store->forgotten = 3;
  CHECK_FALSE(keeper.Copy(3 << 16, out));
  REQUIRE(keeper.Copy(2 << 16, out));
  CHECK(std::equal(out.begin(), out.end(), data.begin() + (2 << 16)));
}

TEST_CASE("output that is not contiguous stops the keeping, never stores a wrong chunk") {
  auto data = KeeperRandomBytes(2 << 16, 9);
  auto store = std::make_shared<ForgetfulStore>(64 << 10);
  PassOutputKeeper keeper(store);
  keeper.Feed(0, std::span(data).first(1000));
  keeper.Feed(2000, std::span(data).subspan(2000, data.size() - 2000));  // a gap
  keeper.Finish(data.size());
  CHECK(store->puts == 0);
  std::vector<uint8_t> out(10);
  CHECK_FALSE(keeper.Copy(0, out));
}

}  // namespace
}  // namespace ocifs
