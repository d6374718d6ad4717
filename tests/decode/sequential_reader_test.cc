// SequentialReader: reads a source front to back in pieces and, with `ahead`,
// keeps the source told about the bytes past its reads (a first pass then has
// range requests in flight while it decodes).
#include "decode/sequential_reader.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

#include "base/memory_source.h"
#include "testing/counting_source.h"

using namespace ocifs;
using ocifs::testing::CountingSource;

namespace {

std::vector<uint8_t> SequentialRandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> data(size);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  return data;
}

// The reader's next bytes (Next), which must not fail.
std::span<const uint8_t> NextBytes(SequentialReader& reader) {
  auto in = reader.Next();
  REQUIRE(in.ok());
  return *in;
}

// Reads the whole source through `reader`, checking the bytes; after each
// refill, `check` sees the reader.
template <typename Check>
void ReadAll(SequentialReader& reader, const std::vector<uint8_t>& data, Check check) {
  std::vector<uint8_t> got;
  for (;;) {
    const std::span<const uint8_t> in = NextBytes(reader);
    if (in.empty()) break;
    check(reader);
    got.insert(got.end(), in.begin(), in.end());
    reader.Skip(in.size());
  }
  CHECK(got == data);
}

uint64_t HintedEnd(const CountingSource& source) {
  std::lock_guard lock(source.mu);
  uint64_t end = 0;
  for (const auto& [offset, length] : source.prefetches) end = std::max(end, offset + length);
  return end;
}

}  // namespace

TEST_CASE("a sequential reader keeps the bytes ahead of its reads hinted") {
  const auto data = SequentialRandomBytes(10 << 20, 1);
  CountingSource source(std::make_shared<MemorySource>(data));
  const uint64_t ahead = 4 << 20;
  SequentialReader reader(source, 0, 1 << 20, ahead);
  ReadAll(reader, data, [&](const SequentialReader& r) {
    // Past the piece just read, three quarters of a window at least (hints go in quarter steps).
    CHECK(HintedEnd(source) >= std::min<uint64_t>(data.size(), r.position() + (1 << 20) + ahead / 4 * 3));
  });
  std::lock_guard lock(source.mu);
  // Each byte past the first piece (read alone, first) hinted once, in order, to the last: never past the end.
  uint64_t next = 1 << 20;
  for (const auto& [offset, length] : source.prefetches) {
    CHECK(offset == next);
    CHECK(length >= ahead / 4);
    next = offset + length;
  }
  CHECK(next == data.size());
  CHECK(source.prefetches.size() <= data.size() / (ahead / 4) + 1);
  CHECK(reader.bytes_read() == data.size());
}

TEST_CASE("a sequential reader without read-ahead hints nothing") {
  const auto data = SequentialRandomBytes(3 << 20, 2);
  CountingSource source(std::make_shared<MemorySource>(data));
  SequentialReader reader(source, 0, 1 << 20);
  ReadAll(reader, data, [](const SequentialReader&) {});
  std::lock_guard lock(source.mu);
  CHECK(source.prefetches.empty());
  CHECK(reader.bytes_read() == data.size());
}

TEST_CASE("a sequential reader that skips ahead hints from where it landed") {
  const auto data = SequentialRandomBytes(8 << 20, 3);
  CountingSource source(std::make_shared<MemorySource>(data));
  SequentialReader reader(source, 0, 256 << 10, 1 << 20);
  NextBytes(reader);
  reader.Skip(5 << 20);  // past the buffer and past every hint so far
  const std::span<const uint8_t> in = NextBytes(reader);
  REQUIRE(!in.empty());
  CHECK(std::equal(in.begin(), in.end(), data.begin() + (5 << 20)));
  std::lock_guard lock(source.mu);
  REQUIRE(source.prefetches.size() == 2);
  // A window past the read where it landed, not the skipped bytes.
  CHECK(source.prefetches[0] == std::pair<uint64_t, uint64_t>(256 << 10, 1 << 20));
  CHECK(source.prefetches[1] == std::pair<uint64_t, uint64_t>((5 << 20) + (256 << 10), 1 << 20));
}

namespace {
// Records the order of hints ('P') and reads ('R').
class OrderSource final : public ByteSource {
 public:
  explicit OrderSource(ByteSourcePtr inner) : inner_(std::move(inner)) {}
  uint64_t size() const override { return inner_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    events += 'R';
    return inner_->ReadAt(offset, buf);
  }
  void Prefetch(uint64_t, uint64_t) const override { events += 'P'; }
  mutable std::string events;

 private:
  ByteSourcePtr inner_;
};
}  // namespace

TEST_CASE("a sequential reader that hints reads a small first piece, hinting what follows it first, then whole pieces") {
  // The first bytes come without waiting for a whole piece (a mount waits for them), and
  // the link gets the bytes after them at once, beside them.
  const auto data = SequentialRandomBytes(12 << 20, 4);
  CountingSource source(std::make_shared<MemorySource>(data));
  SequentialReader reader(source, 0, 4 << 20, 8 << 20);
  const std::span<const uint8_t> first = NextBytes(reader);
  CHECK(first.size() == SequentialReader::kFirstRead);
  CHECK(source.bytes.load() == SequentialReader::kFirstRead);
  {
    std::lock_guard lock(source.mu);
    REQUIRE(source.prefetches.size() == 1);
    CHECK(source.prefetches[0] == std::pair<uint64_t, uint64_t>(SequentialReader::kFirstRead, 8 << 20));
  }
  OrderSource order(std::make_shared<MemorySource>(data));
  SequentialReader ordered(order, 0, 4 << 20, 8 << 20);
  NextBytes(ordered);
  CHECK(order.events == "PR");
  reader.Skip(first.size());
  const std::span<const uint8_t> second = NextBytes(reader);
  CHECK(second.size() == 4 << 20);
  CHECK(std::equal(second.begin(), second.end(), data.begin() + SequentialReader::kFirstRead));
  // Without hints, the first read is a whole piece.
  CountingSource plain(std::make_shared<MemorySource>(data));
  SequentialReader unhinted(plain, 0, 4 << 20);
  const std::span<const uint8_t> whole = NextBytes(unhinted);
  CHECK(whole.size() == 4 << 20);
}
