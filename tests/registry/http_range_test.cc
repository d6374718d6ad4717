#include "registry/http_range.h"

#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

using namespace ocifs;

namespace {
std::vector<uint8_t> Object(size_t n) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}
}  // namespace

TEST_CASE("content range parser accepts exact ranges and rejects junk") {
  auto cr = ParseContentRange("bytes 10-19/100");
  REQUIRE(cr);
  CHECK(cr->first == 10);
  CHECK(cr->last == 19);
  CHECK(cr->total == 100u);
  auto star = ParseContentRange("bytes 0-0/*");
  REQUIRE(star);
  CHECK_FALSE(star->total);
  CHECK_FALSE(ParseContentRange("bytes 20-10/100"));
  CHECK_FALSE(ParseContentRange("bytes 0-99/99"));
  CHECK_FALSE(ParseContentRange("items 0-1/2"));
  CHECK_FALSE(ParseContentRange("bytes */100"));
  CHECK_FALSE(ParseContentRange("bytes 1-2"));
  CHECK_FALSE(ParseContentRange("bytes 1-99999999999999999999/5"));
  CHECK(RangeHeaderValue(10, 10) == "bytes=10-19");
}

TEST_CASE("range sink takes a 206 that matches the request") {
  auto obj = Object(100);
  std::vector<uint8_t> buf(10);
  RangeSink sink(buf, 10, 100, "blob x");
  REQUIRE(sink.Begin(206, "bytes 10-19/100").ok());
  CHECK(sink.Write({obj.data() + 10, 4}));
  CHECK(sink.Write({obj.data() + 14, 6}));
  CHECK(sink.Finish().ok());
  CHECK(buf == std::vector<uint8_t>(obj.begin() + 10, obj.begin() + 20));
}

TEST_CASE("range sink rejects a 206 for other bytes than asked") {
  std::vector<uint8_t> buf(10);
  RangeSink sink(buf, 10, 100, "blob x");
  auto st = sink.Begin(206, "bytes 0-99/100");
  CHECK(st.code() == Code::kCorrupt);
  CHECK_THAT(st.message(), Catch::Contains("asked for bytes 10-19/100"));
  CHECK(sink.Begin(206, "bytes 10-19/200").code() == Code::kCorrupt);
  CHECK(sink.Begin(206, "").code() == Code::kCorrupt);
}

TEST_CASE("range sink skips to the offset of a 200 and clamps to the buffer") {
  auto obj = Object(100);
  std::vector<uint8_t> buf(10, 0xee);
  std::vector<uint8_t> guarded(buf.size() + 8, 0xcc);
  RangeSink sink(std::span<uint8_t>(guarded).first(10), 45, 100, "blob x");
  REQUIRE(sink.Begin(200, "").ok());
  CHECK(sink.Write({obj.data(), 40}));
  CHECK_FALSE(sink.Write({obj.data() + 40, 60}));  // more than asked: stop
  CHECK(sink.Finish().ok());
  CHECK(std::vector<uint8_t>(guarded.begin(), guarded.begin() + 10) ==
        std::vector<uint8_t>(obj.begin() + 45, obj.begin() + 55));
  for (size_t i = 10; i < guarded.size(); ++i) CHECK(guarded[i] == 0xcc);
}

TEST_CASE("range sink reports a short body, and Begin starts a retry over") {
  auto obj = Object(100);
  std::vector<uint8_t> buf(10);
  RangeSink sink(buf, 0, 100, "blob x");
  REQUIRE(sink.Begin(206, "bytes 0-9/100").ok());
  sink.Write({obj.data(), 5});
  auto st = sink.Finish();
  CHECK(st.code() == Code::kUnavailable);
  CHECK_THAT(st.message(), Catch::Contains("5 of 10"));
  REQUIRE(sink.Begin(206, "bytes 0-9/100").ok());
  sink.Write({obj.data(), 10});
  CHECK(sink.Finish().ok());
}

TEST_CASE("range sink with a consumer hands the range's bytes in order, from a 206 or a 200, and stops when told") {
  const std::vector<uint8_t> obj = Object(200);
  std::vector<uint8_t> got;
  std::vector<uint64_t> ats;
  bool keep_going = true;
  RangeSink sink(50, [&](uint64_t at, std::span<const uint8_t> bytes) {
    ats.push_back(at);
    got.insert(got.end(), bytes.begin(), bytes.end());
    return keep_going;
  }, 100, obj.size(), "blob x");
  SECTION("206 in three pieces") {
    REQUIRE(sink.Begin(206, "bytes 100-149/200").ok());
    CHECK(sink.Write(std::span(obj).subspan(100, 10)));
    CHECK(sink.Write(std::span(obj).subspan(110, 30)));
    CHECK_FALSE(sink.done());
    CHECK_FALSE(sink.Finish().ok());
    CHECK(sink.Write(std::span(obj).subspan(140, 10)));
    CHECK(sink.done());
    CHECK(sink.Finish().ok());
    CHECK(got == std::vector<uint8_t>(obj.begin() + 100, obj.begin() + 150));
    CHECK(ats == std::vector<uint64_t>{0, 10, 40});
  }
  SECTION("a 200 is skipped to the offset and cut at the range's end") {
    REQUIRE(sink.Begin(200, "").ok());
    CHECK(sink.Write(std::span(obj).first(120)));
    CHECK_FALSE(sink.Write(std::span(obj).subspan(120, 80)));  // past the range: stop
    CHECK(sink.Finish().ok());
    CHECK(got == std::vector<uint8_t>(obj.begin() + 100, obj.begin() + 150));
  }
  SECTION("a retry hands the bytes again from the range's start; the consumer may stop the transfer") {
    REQUIRE(sink.Begin(206, "bytes 100-149/200").ok());
    CHECK(sink.Write(std::span(obj).subspan(100, 20)));
    REQUIRE(sink.Begin(206, "bytes 100-149/200").ok());
    keep_going = false;
    CHECK_FALSE(sink.Write(std::span(obj).subspan(100, 20)));
    CHECK(ats == std::vector<uint64_t>{0, 0});
    Status st = sink.Finish();
    CHECK(st.code() == Code::kUnavailable);
    CHECK_THAT(st.message(), Catch::Contains("blob x") && Catch::Contains("of 50 bytes"));
  }
  SECTION("a 206 for other bytes is refused before the consumer sees any") {
    CHECK(sink.Begin(206, "bytes 0-49/200").code() == Code::kCorrupt);
    CHECK(got.empty());
  }
}
