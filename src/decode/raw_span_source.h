// RawSpanSource: a decoded layer (a zstd checkpoint source, a gzip source
// over an index) whose reads inside the blob's raw stretches (RawSpanTable:
// zstd raw blocks, deflate stored blocks) are copies of the compressed bytes
// instead: no decoding, and only the read's own units fetched, not the
// segment or span around them. The rest of each read goes to the decoder.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "decode/raw_span_table.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Every byte served from a raw stretch is in a unit that matched its CRC-32;
// one that does not fails the read with kDataLoss (the table is wrong for
// this blob: IndexFallbackSource then falls back, as for the decoder's own
// index).
// Thread safety: safe for concurrent use once RecordNeeded (if at all) was
// called. Memory: the table (20 bytes a span, 4 a unit: about 60 KiB per
// 1,000 zstd raw blocks) and one read's units at a time.
// Ownership: shares `decoded` and `compressed`.
class RawSpanSource final : public ByteSource {
 public:
  // `table` must describe `compressed` (its blob size) and `decoded` (its
  // decoded size): Open checks both.
  RawSpanSource(ByteSourcePtr decoded, ByteSourcePtr compressed, std::shared_ptr<const RawSpanTable> table);
  [[nodiscard]] static Result<std::shared_ptr<RawSpanSource>> Open(ByteSourcePtr decoded, ByteSourcePtr compressed,
                                                                   std::shared_ptr<const RawSpanTable> table);

  uint64_t size() const override { return decoded_->size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  Result<Extent> ExtentAt(uint64_t offset) const override { return decoded_->ExtentAt(offset); }
  // Forwards the units of the raw stretches in [offset, offset + length) to
  // `compressed`, the rest to `decoded`.
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return decoded_->Describe(); }
  Access access() const override { return decoded_->access(); }
  bool KeepsDecoded() const override { return decoded_->KeepsDecoded(); }
  Status WaitUntilIndexed() const override { return decoded_->WaitUntilIndexed(); }

  // Reports the blob's bytes (whole units) each read copies from a raw
  // stretch, as DecoderOptions::record_compressed wants them (the decoder
  // reports its own). Before any read; once.
  void RecordNeeded(std::function<void(uint64_t offset, uint64_t length)> record) { record_ = std::move(record); }

  // Bytes served from raw stretches so far (for tests and stats).
  uint64_t raw_bytes_read() const { return raw_read_.load(std::memory_order_relaxed); }

 private:
  // Copies decoded [offset, offset + dst.size()), all inside raw spans
  // first..last (consecutive, contiguous in decoded bytes), into dst.
  [[nodiscard]] Status ReadRaw(size_t first, size_t last, uint64_t offset, std::span<uint8_t> dst) const;
  // The last span from `s` on that continues it without a gap in decoded
  // bytes, ending at most at decoded offset `end`.
  size_t RunEnd(size_t s, uint64_t end) const;

  const ByteSourcePtr decoded_;
  const ByteSourcePtr compressed_;
  const std::shared_ptr<const RawSpanTable> table_;
  std::function<void(uint64_t, uint64_t)> record_;
  mutable std::atomic<uint64_t> raw_read_{0};
};

}  // namespace ocifs
