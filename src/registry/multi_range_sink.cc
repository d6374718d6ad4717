#include "registry/multi_range_sink.h"

#include <algorithm>
#include <cctype>

#include "registry/http_range.h"

namespace ocifs {
namespace {

std::string LowerCase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The boundary parameter of a multipart/byteranges Content-Type, or "" if
// the type is another one or names no usable boundary (RFC 2046: 1-70 chars).
std::string BoundaryOf(std::string_view content_type) {
  const std::string lower = LowerCase(content_type);
  if (!TrimBlanks(std::string_view(lower)).starts_with("multipart/byteranges")) return "";
  size_t at = lower.find("boundary=");
  if (at == std::string::npos) return "";
  std::string_view value = std::string_view(content_type).substr(at + 9);
  if (value.starts_with('"')) {
    value.remove_prefix(1);
    size_t end = value.find('"');
    if (end == std::string_view::npos) return "";
    value = value.substr(0, end);
  } else {
    value = TrimBlanks(value.substr(0, value.find(';')));
  }
  if (value.empty() || value.size() > 70) return "";
  return std::string(value);
}

}  // namespace

MultiRangeSink::MultiRangeSink(std::vector<ByteRange> ranges, uint64_t object_size, Consumer consumer,
                               std::string what)
    : ranges_(std::move(ranges)), object_size_(object_size), consumer_(std::move(consumer)), what_(std::move(what)) {}

std::string MultiRangeSink::RangeHeaderValue() const {
  std::string value = "bytes=";
  for (size_t i = 0; i < ranges_.size(); ++i) {
    if (i) value += ',';
    value += std::to_string(ranges_[i].offset);
    value += '-';
    value += std::to_string(ranges_[i].offset + ranges_[i].length - 1);
  }
  return value;
}

Status MultiRangeSink::Begin(long status, const HttpHeaders& headers) {
  state_ = State::kPreamble;
  line_.clear();
  header_bytes_ = 0;
  part_left_ = 0;
  parts_.clear();
  error_ = Status::Ok();
  stopped_ = false;
  received_ = 0;
  if (status != 206) {
    return Unsupported(what_ + ": HTTP " + std::to_string(status) + " to a request for " +
                       std::to_string(ranges_.size()) + " ranges (the server does not do multi-range requests)");
  }
  boundary_ = BoundaryOf(headers.Get("content-type"));
  if (!boundary_.empty()) return Status::Ok();
  // One range for the whole body: a coalescing server, or one that took the first range only.
  Status started = StartPart(headers.Get("content-range"));
  if (!started.ok()) return started;
  return Status::Ok();
}

Status MultiRangeSink::StartPart(std::string_view value) {
  std::optional<ContentRange> cr = ParseContentRange(value);
  if (!cr) {
    return Corrupt(what_ + ": a part of a multi-range answer with a missing or malformed Content-Range \"" +
                   std::string(value.substr(0, 100)) + "\"");
  }
  if (object_size_ != 0 && (cr->last >= object_size_ || (cr->total && *cr->total != object_size_))) {
    return Corrupt(what_ + ": a part of a multi-range answer says \"" + std::string(value.substr(0, 100)) +
                   "\" of an object of " + std::to_string(object_size_) + " bytes");
  }
  part_at_ = cr->first;
  part_left_ = cr->last - cr->first + 1;
  parts_.push_back(ByteRange{cr->first, part_left_});
  state_ = State::kBody;
  return Status::Ok();
}

Status MultiRangeSink::TakeLine(std::string_view line) {
  const std::string_view delimiter = line.substr(0, 2 + boundary_.size());
  const bool is_delimiter = line.starts_with("--") && delimiter.substr(2) == boundary_;
  const std::string_view rest = is_delimiter ? TrimBlanks(line.substr(delimiter.size())) : std::string_view();
  switch (state_) {
    case State::kPreamble:
      if (is_delimiter && rest.empty()) {
        state_ = State::kHeaders;
        header_bytes_ = 0;
        part_range_.clear();
      }
      return Status::Ok();
    case State::kAfterBody:
      if (TrimBlanks(line).empty() && !body_crlf_) {  // the CRLF that ends the body
        body_crlf_ = true;
        return Status::Ok();
      }
      if (is_delimiter && rest == "--") {
        state_ = State::kDone;
        return Status::Ok();
      }
      if (is_delimiter && rest.empty()) {
        state_ = State::kHeaders;
        header_bytes_ = 0;
        part_range_.clear();
        return Status::Ok();
      }
      return Corrupt(what_ + ": multi-range answer: expected the boundary after a part, got \"" +
                     std::string(line.substr(0, 60)) + "\"");
    case State::kHeaders: {
      if (TrimBlanks(line).empty()) return StartPart(part_range_);
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos && LowerCase(TrimBlanks(line.substr(0, colon))) == "content-range") {
        part_range_ = std::string(TrimBlanks(line.substr(colon + 1)));
      }
      return Status::Ok();
    }
    case State::kBody:
    case State::kDone:
      return Status::Ok();
  }
  return Status::Ok();
}

bool MultiRangeSink::Deliver(uint64_t at, std::span<const uint8_t> bytes) {
  // The first asked range ending after `at`; then every range the bytes meet.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), at,
                             [](uint64_t a, const ByteRange& r) { return a < r.offset + r.length; });
  const uint64_t end = at + bytes.size();
  for (; it != ranges_.end() && it->offset < end; ++it) {
    const uint64_t from = std::max(at, it->offset);
    const uint64_t to = std::min(end, it->offset + it->length);
    if (from >= to) continue;
    if (!consumer_(from, bytes.subspan(static_cast<size_t>(from - at), static_cast<size_t>(to - from)))) {
      stopped_ = true;
      return false;
    }
  }
  return true;
}

bool MultiRangeSink::Fail(Status status) {
  error_ = std::move(status);
  return false;
}

bool MultiRangeSink::Write(std::span<const uint8_t> piece) {
  received_ += piece.size();
  while (!piece.empty()) {
    if (state_ == State::kBody) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(part_left_, piece.size()));
      if (!Deliver(part_at_, piece.first(n))) return false;
      part_at_ += n;
      part_left_ -= n;
      piece = piece.subspan(n);
      if (part_left_ == 0) {
        if (boundary_.empty()) {
          state_ = State::kDone;
        } else {
          state_ = State::kAfterBody;
          header_bytes_ = 0;
          body_crlf_ = false;
          line_.clear();
        }
      }
      continue;
    }
    if (state_ == State::kDone) {
      if (boundary_.empty()) return Fail(Corrupt(what_ + ": more bytes than its Content-Range says"));
      return true;  // the epilogue
    }
    // Lines: the preamble, a part's headers, the delimiter after a body.
    const auto nl = std::find(piece.begin(), piece.end(), uint8_t{'\n'});
    const size_t take = static_cast<size_t>(nl - piece.begin());
    line_.append(reinterpret_cast<const char*>(piece.data()), take);
    if (line_.size() > kMaxLine || (header_bytes_ += take) > kMaxHeaderBytes) {
      return Fail(Corrupt(what_ + ": multi-range answer: a header or delimiter line past " +
                          std::to_string(kMaxLine) + " bytes"));
    }
    if (nl == piece.end()) return true;  // the line continues in the next piece
    piece = piece.subspan(take + 1);
    std::string line = std::move(line_);
    line_.clear();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    Status st = TakeLine(line);
    if (!st.ok()) return Fail(std::move(st));
  }
  return true;
}

Status MultiRangeSink::Finish() {
  if (!error_.ok()) return error_;
  if (stopped_) return Cancelled(what_ + ": multi-range read stopped by its reader");
  if (state_ == State::kBody) {
    return Unavailable(what_ + ": multi-range answer ended " + std::to_string(part_left_) +
                       " bytes short of a part's end");
  }
  // Every asked range inside the union of the parts.
  std::vector<ByteRange> parts = parts_;
  std::sort(parts.begin(), parts.end(), [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  size_t p = 0;
  uint64_t covered_to = 0;  // how far the parts reach from the range's start, without a hole
  size_t missing = 0;
  for (const ByteRange& r : ranges_) {
    while (p < parts.size() && parts[p].offset + parts[p].length <= r.offset) ++p;
    covered_to = r.offset;
    for (size_t q = p; q < parts.size() && parts[q].offset <= covered_to; ++q) {
      covered_to = std::max(covered_to, parts[q].offset + parts[q].length);
    }
    if (covered_to < r.offset + r.length) ++missing;
  }
  if (missing == 0) return Status::Ok();
  if (state_ == State::kDone || boundary_.empty()) {
    return Unsupported(what_ + ": a request for " + std::to_string(ranges_.size()) + " ranges was answered with " +
                       std::to_string(ranges_.size() - missing) + " of them");
  }
  return Unavailable(what_ + ": multi-range answer ended after " + std::to_string(parts_.size()) + " parts, " +
                     std::to_string(missing) + " of " + std::to_string(ranges_.size()) + " ranges missing");
}

}  // namespace ocifs
