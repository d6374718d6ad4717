// MultiRangeSink: the body of one response to an HTTP request for several
// byte ranges of one object ("Range: bytes=a-b,c-d,..", RFC 9110 14.2/14.6),
// handed to a consumer as it arrives, with no buffer of its own beyond one
// header line.
//
// Answers it takes:
//   206 multipart/byteranges: parts in any order, each with its own
//       Content-Range; a part may cover several asked ranges and the gaps
//       between them (a server may coalesce ranges); bytes outside the asked
//       ranges are skipped. The body of a part is read by its Content-Range's
//       length, not by scanning for the boundary.
//   206 with one Content-Range: one part (a server that coalesced all the
//       ranges into one, or that answered the first range alone).
//   200 (the whole object) and anything else a server that does not do
//       multi-range sends: Begin fails kUnsupported, and the transfer stops
//       at once (the caller asks the ranges one per request).
// Finish: OK when the parts covered every asked range; kUnsupported if the
// answer was whole but covered only some (a server that answers the first
// range alone); kUnavailable if the body ended inside a part (a retry starts
// over: Begin resets, and the consumer sees those bytes again); kCorrupt for
// a malformed part (no Content-Range, a range past the object's end or of
// another total, a broken delimiter).
//
// Not thread-safe (one transfer at a time). Units: object offsets in bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/byte_source.h"
#include "ocifs/status.h"
#include "registry/http_client.h"

namespace ocifs {

class MultiRangeSink final : public BodySink {
 public:
  // Takes bytes [offset, offset + bytes.size()) of the object, all inside one
  // asked range; false stops the transfer (Finish then reports kCancelled).
  using Consumer = std::function<bool(uint64_t offset, std::span<const uint8_t> bytes)>;

  // `ranges`: sorted by offset, disjoint, non-empty, inside [0, object_size)
  // (object_size 0: unknown). `what` names the object in messages.
  MultiRangeSink(std::vector<ByteRange> ranges, uint64_t object_size, Consumer consumer, std::string what);

  // "bytes=a-b,c-d,.." for the ranges.
  std::string RangeHeaderValue() const;

  Status Begin(long status, const HttpHeaders& headers) override;
  bool Write(std::span<const uint8_t> piece) override;
  Status Finish() override;

  // Body bytes seen in this attempt (stats).
  uint64_t received() const { return received_; }

  static constexpr size_t kMaxLine = 1024;        // a header or delimiter line
  static constexpr size_t kMaxHeaderBytes = 8192;  // one part's headers, or the preamble

 private:
  enum class State { kPreamble, kHeaders, kBody, kAfterBody, kDone };
  // One complete line (CRLF or LF stripped) in the current state.
  Status TakeLine(std::string_view line);
  // Starts a part's body for Content-Range `value`.
  Status StartPart(std::string_view value);
  // Hands body bytes at object offset `at` to the consumer (their asked parts).
  bool Deliver(uint64_t at, std::span<const uint8_t> bytes);
  bool Fail(Status status);

  const std::vector<ByteRange> ranges_;
  const uint64_t object_size_;
  const Consumer consumer_;
  const std::string what_;

  std::string boundary_;  // "" for a single-part answer
  State state_ = State::kPreamble;
  std::string line_;               // the line being read
  size_t header_bytes_ = 0;        // bytes of the current preamble or header block
  bool body_crlf_ = false;         // kAfterBody: the CRLF after the body was seen
  std::string part_range_;         // the current part's Content-Range value
  uint64_t part_at_ = 0;           // object offset of the next body byte
  uint64_t part_left_ = 0;         // body bytes left in the current part
  std::vector<ByteRange> parts_;   // the parts received (their Content-Ranges)
  Status error_;
  bool stopped_ = false;  // the consumer stopped
  uint64_t received_ = 0;
};

}  // namespace ocifs
