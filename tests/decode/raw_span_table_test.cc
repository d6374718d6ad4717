#include "decode/raw_span_table.h"

#include <catch2/catch.hpp>

#include "testing/raw_zstd_data.h"

using namespace ocifs;
using ocifs::testing::RawZstdData;

namespace {

std::span<const uint8_t> RawTableBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST_CASE("raw span table: a zstd pass lists the raw blocks, whose blob bytes are the decoded bytes") {
  RawZstdData d;
  const RawSpanTable& t = d.raw;
  // 300 KiB of random bytes hold at least one whole 128 KiB block of the frame each.
  REQUIRE(t.spans().size() >= 8);
  CHECK(t.blob_size() == d.blob->size());
  CHECK(t.decoded_size() == d.data.size());
  CHECK(t.raw_bytes() >= 8 * (128u << 10));
  CHECK(t.raw_bytes() < d.data.size());  // the text is compressed
  std::vector<uint8_t> blob(d.blob->size());
  REQUIRE(d.blob->ReadAt(0, blob).ok());
  for (size_t s = 0; s < t.spans().size(); ++s) {
    const RawSpan& r = t.spans()[s];
    INFO("span " << s);
    REQUIRE(std::equal(blob.begin() + static_cast<ptrdiff_t>(r.in), blob.begin() + static_cast<ptrdiff_t>(r.in + r.size),
                       d.data.begin() + static_cast<ptrdiff_t>(r.out)));
    // Every unit matches its checksum; a byte changed in one does not.
    const std::span<const uint8_t> bytes(blob.data() + r.in, r.size);
    CHECK(t.Matches(s, r.in, bytes));
    std::vector<uint8_t> changed(bytes.begin(), bytes.end());
    changed[changed.size() / 2] ^= 1;
    CHECK_FALSE(t.Matches(s, r.in, changed));
    CHECK(t.SpanAt(r.out) == s);
    CHECK(t.SpanAt(r.out + r.size - 1) == s);
    CHECK(t.SpanAtInput(r.in + r.size / 2) == s);
  }
}

TEST_CASE("raw span table: units are aligned to the blob's offsets, clipped to the span") {
  RawZstdData d;
  const RawSpanTable& t = d.raw;
  const RawSpan& r = t.spans()[1];
  const uint32_t u = t.unit();
  // One byte in the middle widens to the unit holding it.
  const uint64_t mid = r.in + r.size / 2;
  auto [a, b] = t.WidenToUnits(1, mid, mid + 1);
  CHECK(a == mid / u * u);
  CHECK(b == a + u);
  // The span's first byte: its unit starts at the span (the 3-byte header is not in it).
  std::tie(a, b) = t.WidenToUnits(1, r.in, r.in + 1);
  CHECK(a == r.in);
  CHECK(b == std::min<uint64_t>(r.in + r.size, (r.in / u + 1) * u));
  CHECK(t.UnitsOf(1) == (r.in + r.size - 1) / u - r.in / u + 1);
  // Not a unit's start, or not whole units: no match.
  std::vector<uint8_t> blob(d.blob->size());
  REQUIRE(d.blob->ReadAt(0, blob).ok());
  CHECK_FALSE(t.Matches(1, a + 1, std::span<const uint8_t>(blob.data() + a + 1, b - a - 1)));
  CHECK_FALSE(t.Matches(1, a, std::span<const uint8_t>(blob.data() + a, b - a - 1)));
  CHECK(t.Matches(1, a, std::span<const uint8_t>(blob.data() + a, b - a)));
  CHECK(t.SpanAt(r.out - 1) != 1);
  CHECK(t.NextSpanStart(r.out - 1) == r.out);
  CHECK(t.FirstSpanAfterInput(r.in - 1) == 1);
}

TEST_CASE("raw span table: its file parses back, and every truncation or bit flip is refused") {
  RawZstdData d(3, 300 << 10, 8 << 10);  // a small table: every bit is flipped
  REQUIRE(d.raw.spans().size() >= 2);
  const std::string bytes = d.raw.Serialize();
  auto parsed = RawSpanTable::Parse(RawTableBytes(bytes));
  REQUIRE(parsed.ok());
  CHECK(parsed->Serialize() == bytes);
  CHECK(parsed->spans().size() == d.raw.spans().size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto cut = RawSpanTable::Parse(RawTableBytes(bytes).first(n));
    INFO("truncated to " << n);
    REQUIRE_FALSE(cut.ok());
    CHECK(cut.status().code() == Code::kCorrupt);
  }
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string flipped = bytes;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    auto p = RawSpanTable::Parse(RawTableBytes(flipped));
    INFO("bit " << bit);
    REQUIRE_FALSE(p.ok());
    CHECK(p.status().message().find("raw span table") != std::string::npos);
  }
}

TEST_CASE("raw span table: spans out of order, out of bounds or with the wrong checksum count are refused") {
  const std::vector<uint32_t> two = {1, 2};
  CHECK(RawSpanTable::Make(100000, 100000, 4096, {{10, 10, 100}, {200, 200, 100}}, two).ok());
  auto overlap = RawSpanTable::Make(100000, 100000, 4096, {{10, 10, 100}, {50, 200, 100}}, two);
  CHECK(overlap.status().message().find("overlaps") != std::string::npos);
  auto past = RawSpanTable::Make(1000, 100000, 4096, {{10, 10, 100}, {950, 200, 100}}, two);
  CHECK(past.status().message().find("past the blob's end") != std::string::npos);
  auto decoded = RawSpanTable::Make(100000, 250, 4096, {{10, 10, 100}, {200, 200, 100}}, two);
  CHECK(decoded.status().message().find("past the decoded end") != std::string::npos);
  auto count = RawSpanTable::Make(100000, 100000, 4096, {{10, 10, 100}, {200, 200, 100}}, {1});
  CHECK(count.status().message().find("unit checksums") != std::string::npos);
  auto unit = RawSpanTable::Make(100000, 100000, 3000, {{10, 10, 100}}, {1});
  CHECK(unit.status().message().find("power of two") != std::string::npos);
  auto empty = RawSpanTable::Make(100000, 100000, 4096, {{10, 10, 0}}, {});
  CHECK(empty.status().message().find("empty") != std::string::npos);
}
