// RawSpanTable: where a compressed blob holds stretches of its decoded bytes
// verbatim (zstd raw blocks, deflate stored blocks: what a compressor writes
// for incompressible data, such as a qcow2's compressed clusters), with a
// CRC-32 of each stretch's bytes in units aligned to the blob's offsets; the
// file format of docs/raw-spans-format.md (an acceleration artifact's
// `application/vnd.oci-fs.raw-spans.v1` piece). A read inside a stretch is a
// copy of compressed bytes (RawSpanSource): no decoding, and no bytes fetched
// beyond the read's own units.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// Decoded bytes [out, out + size) are the blob's bytes [in, in + size).
struct RawSpan {
  uint64_t in = 0;
  uint64_t out = 0;
  uint32_t size = 0;
};

// Value type; const methods are safe for concurrent use.
class RawSpanTable {
 public:
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kHeaderSize = 48;
  static constexpr size_t kRecordSize = 20;
  static constexpr uint64_t kMaxFileBytes = uint64_t{64} << 20;  // an artifact piece's bound
  static constexpr size_t npos = static_cast<size_t>(-1);

  RawSpanTable() = default;
  // `spans` sorted and disjoint in both coordinates; crcs: per span, per unit
  // (UnitsOf), in order. Checked as Parse checks (kCorrupt naming the fault).
  [[nodiscard]] static Result<RawSpanTable> Make(uint64_t blob_size, uint64_t decoded_size, uint32_t unit,
                                                 std::vector<RawSpan> spans, std::vector<uint32_t> crcs);
  // The file's bytes (docs/raw-spans-format.md).
  std::string Serialize() const;
  // Parses and checks a file: kCorrupt naming the field at fault (any
  // truncation, bit flip, span out of bounds or out of order).
  [[nodiscard]] static Result<RawSpanTable> Parse(std::span<const uint8_t> bytes);

  uint64_t blob_size() const { return blob_size_; }
  uint64_t decoded_size() const { return decoded_size_; }
  uint32_t unit() const { return unit_; }
  const std::vector<RawSpan>& spans() const { return spans_; }
  uint64_t raw_bytes() const { return raw_bytes_; }

  // The span holding decoded offset `out`, or npos.
  size_t SpanAt(uint64_t out) const;
  // The decoded offset of the first span starting after `out`, or decoded_size().
  uint64_t NextSpanStart(uint64_t out) const;
  // The span whose compressed bytes hold blob offset `in`, or npos.
  size_t SpanAtInput(uint64_t in) const;
  // The first span starting after blob offset `in`, or npos.
  size_t FirstSpanAfterInput(uint64_t in) const;
  // Span s's units: [unit_start(k), unit_end(k)) of the blob for k in
  // [0, UnitsOf(s)), each the intersection of the span's bytes with one
  // unit-aligned stretch of the blob.
  uint64_t UnitsOf(size_t s) const;
  // The blob bytes [first, second) of span s's units holding its blob bytes [from, to).
  std::pair<uint64_t, uint64_t> WidenToUnits(size_t s, uint64_t from, uint64_t to) const;
  // Checks `bytes`, span s's blob bytes from `from` (a unit's start, as
  // WidenToUnits gives) over whole units, against their CRC-32s.
  [[nodiscard]] bool Matches(size_t s, uint64_t from, std::span<const uint8_t> bytes) const;

 private:
  // The first span whose `field` (in or out) is past `at` (spans_.size() if
  // none); the span whose [field, field + size) holds `at`, or npos.
  size_t FirstAfter(uint64_t at, uint64_t RawSpan::*field) const;
  size_t Holding(uint64_t at, uint64_t RawSpan::*field) const;

  uint64_t blob_size_ = 0;
  uint64_t decoded_size_ = 0;
  uint32_t unit_ = 4096;
  std::vector<RawSpan> spans_;
  std::vector<uint32_t> crcs_;
  std::vector<uint64_t> first_crc_;  // per span: its first unit's index in crcs_
  uint64_t raw_bytes_ = 0;
};

// Builds a table while a pass goes by (`oci-fs accelerate`). Thread safety:
// none. Units: bytes.
class RawSpanTableBuilder {
 public:
  explicit RawSpanTableBuilder(uint32_t unit = 4096, uint32_t min_size = 4096) : unit_(unit), min_size_(min_size) {}
  // Decoded bytes [out, out + payload.size()) are blob bytes [in, ...);
  // after every earlier span in both. Spans shorter than min_size are left
  // out (a read there decodes as usual).
  void Add(uint64_t in, uint64_t out, std::span<const uint8_t> payload);
  [[nodiscard]] Result<RawSpanTable> Finish(uint64_t blob_size, uint64_t decoded_size);
  size_t span_count() const { return spans_.size(); }

 private:
  const uint32_t unit_;
  const uint32_t min_size_;
  std::vector<RawSpan> spans_;
  std::vector<uint32_t> crcs_;
};

}  // namespace ocifs
