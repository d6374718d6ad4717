// Byte ranges over HTTP: the Content-Range check and the body sink of a range
// read, which never writes more than was asked into the caller's buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

// "bytes 0-99/1234" or "bytes 0-99/*". total = nullopt for '*'.
struct ContentRange {
  uint64_t first = 0, last = 0;  // inclusive
  std::optional<uint64_t> total;
};
std::optional<ContentRange> ParseContentRange(std::string_view value);

// "bytes=<offset>-<offset+length-1>" (length > 0).
std::string RangeHeaderValue(uint64_t offset, uint64_t length);

// Receives the body of one response to a range request for [offset, offset+n)
// of an object of `object_size` bytes (0 = unknown), n > 0: into a buffer
// (n = buf.size()), or handed to a consumer as it arrives (a stream).
//   206: Content-Range must say exactly that range (and that total, if known).
//   200: the whole object; skips `offset` bytes and takes n.
// Begin() resets it, so one sink serves every retry of a request (a
// consumer then sees the range's bytes again from its start: `at` says where).
// Not thread-safe (one transfer at a time). Does not own buf.
class RangeSink {
 public:
  // Takes bytes [at, at + bytes.size()) of the range, in order; false stops
  // the transfer (Finish then reports the shortfall).
  using Consumer = std::function<bool(uint64_t at, std::span<const uint8_t> bytes)>;

  RangeSink(std::span<uint8_t> buf, uint64_t offset, uint64_t object_size, std::string what)
      : buf_(buf), length_(buf.size()), offset_(offset), object_size_(object_size), what_(std::move(what)) {}
  RangeSink(uint64_t length, Consumer consumer, uint64_t offset, uint64_t object_size, std::string what)
      : length_(length), consumer_(std::move(consumer)), offset_(offset), object_size_(object_size),
        what_(std::move(what)) {}

  // `content_range` is the header value ("" if absent).
  Status Begin(long status, std::string_view content_range);
  // Takes a piece of the body; returns false when the piece holds bytes past
  // what was asked, or the consumer stopped (the transfer should be cut
  // short; Finish() tells success).
  bool Write(std::span<const uint8_t> piece);
  // OK once all n bytes arrived; kUnavailable naming the shortfall otherwise.
  Status Finish() const;
  bool done() const { return filled_ == length_; }
  uint64_t received() const { return received_; }

 private:
  std::span<uint8_t> buf_;
  uint64_t length_;
  Consumer consumer_;  // set: bytes go to it, not to buf_
  uint64_t offset_;
  uint64_t object_size_;
  std::string what_;
  uint64_t skip_ = 0;      // bytes still to discard (a 200 reply)
  uint64_t filled_ = 0;    // bytes of the range taken
  uint64_t received_ = 0;  // body bytes seen in this attempt
};

}  // namespace ocifs
