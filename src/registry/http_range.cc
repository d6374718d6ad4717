#include "registry/http_range.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace ocifs {
namespace {

std::optional<uint64_t> Number(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

// "FIRST-LAST" or "FIRST-LAST/TOTAL" (total 0: unknown), appended piece by
// piece: GCC 12 at -O3 sees a false -Wrestrict overlap in a conditional
// `"/" + std::to_string(...)` temporary.
std::string AskedRange(uint64_t first, uint64_t last, uint64_t total) {
  std::string text = std::to_string(first);
  text += '-';
  text += std::to_string(last);
  if (total != 0) {
    text += '/';
    text += std::to_string(total);
  }
  return text;
}

}  // namespace

std::optional<ContentRange> ParseContentRange(std::string_view v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\r' || v.back() == '\n')) v.remove_suffix(1);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  if (!v.starts_with("bytes ")) return std::nullopt;
  v.remove_prefix(6);
  size_t dash = v.find('-'), slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return std::nullopt;
  auto first = Number(v.substr(0, dash));
  auto last = Number(v.substr(dash + 1, slash - dash - 1));
  if (!first || !last || *last < *first) return std::nullopt;
  ContentRange cr{*first, *last, std::nullopt};
  std::string_view total = v.substr(slash + 1);
  if (total != "*") {
    auto t = Number(total);
    if (!t || *t <= *last) return std::nullopt;
    cr.total = *t;
  }
  return cr;
}

std::string RangeHeaderValue(uint64_t offset, uint64_t length) {
  return "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
}

Status RangeSink::Begin(long status, std::string_view content_range) {
  filled_ = 0;
  received_ = 0;
  skip_ = 0;
  uint64_t last = offset_ + length_ - 1;
  if (status == 206) {
    auto cr = ParseContentRange(content_range);
    if (!cr) {
      return Corrupt(what_ + ": 206 reply with a missing or malformed Content-Range \"" +
                     std::string(content_range.substr(0, 100)) + "\"");
    }
    if (cr->first != offset_ || cr->last != last || (object_size_ && cr->total && *cr->total != object_size_)) {
      return Corrupt(what_ + ": asked for bytes " + AskedRange(offset_, last, object_size_) + ", server sent \"" +
                     std::string(content_range.substr(0, 100)) + "\"");
    }
    return Status::Ok();
  }
  if (status == 200) {
    skip_ = offset_;
    return Status::Ok();
  }
  return Internal(what_ + ": range sink given status " + std::to_string(status));
}

bool RangeSink::Write(std::span<const uint8_t> piece) {
  received_ += piece.size();
  if (skip_ > 0) {
    size_t s = static_cast<size_t>(std::min<uint64_t>(skip_, piece.size()));
    skip_ -= s;
    piece = piece.subspan(s);
  }
  if (piece.empty()) return true;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(piece.size(), length_ - filled_));
  if (consumer_) {
    if (n > 0 && !consumer_(filled_, piece.first(n))) return false;  // the consumer stopped
  } else if (n > 0) {
    std::memcpy(buf_.data() + filled_, piece.data(), n);
  }
  filled_ += n;
  return n == piece.size();  // false: more than asked arrived; stop the transfer
}

Status RangeSink::Finish() const {
  if (done()) return Status::Ok();
  return Unavailable(what_ + ": response ended after " + std::to_string(filled_) + " of " +
                     std::to_string(length_) + " bytes asked at offset " + std::to_string(offset_));
}

}  // namespace ocifs
