#include "decode/raw_span_source.h"

#include <algorithm>
#include <vector>

namespace ocifs {
namespace {

// Spans this close in the blob (a zstd block header: 3 bytes; a deflate
// stored block's: 5) are read with one request, the bytes between them too.
constexpr uint64_t kRawJoinGap = 64;

}  // namespace

RawSpanSource::RawSpanSource(ByteSourcePtr decoded, ByteSourcePtr compressed,
                             std::shared_ptr<const RawSpanTable> table)
    : decoded_(std::move(decoded)), compressed_(std::move(compressed)), table_(std::move(table)) {}

Result<std::shared_ptr<RawSpanSource>> RawSpanSource::Open(ByteSourcePtr decoded, ByteSourcePtr compressed,
                                                           std::shared_ptr<const RawSpanTable> table) {
  if (!table) return InvalidArgument("RawSpanSource: no table");
  if (table->blob_size() != compressed->size()) {
    return Corrupt("raw span table is for a blob of " + std::to_string(table->blob_size()) + " bytes, " +
                   compressed->Describe() + " has " + std::to_string(compressed->size()));
  }
  if (table->decoded_size() != decoded->size()) {
    return Corrupt("raw span table is for " + std::to_string(table->decoded_size()) + " decoded bytes, " +
                   decoded->Describe() + " has " + std::to_string(decoded->size()));
  }
  return std::make_shared<RawSpanSource>(std::move(decoded), std::move(compressed), std::move(table));
}

size_t RawSpanSource::RunEnd(size_t s, uint64_t end) const {
  const auto& spans = table_->spans();
  while (s + 1 < spans.size() && spans[s + 1].out < end && spans[s + 1].out == spans[s].out + spans[s].size &&
         spans[s + 1].in - (spans[s].in + spans[s].size) <= kRawJoinGap) {
    ++s;
  }
  return s;
}

Status RawSpanSource::ReadRaw(size_t first, size_t last, uint64_t offset, std::span<uint8_t> dst) const {
  const auto& spans = table_->spans();
  const uint64_t end = offset + dst.size();
  const RawSpan& f = spans[first];
  const RawSpan& l = spans[last];
  const uint64_t a = table_->WidenToUnits(first, f.in + (offset - f.out), f.in + (offset - f.out) + 1).first;
  const uint64_t z = table_->WidenToUnits(last, l.in + (end - 1 - l.out), l.in + (end - l.out)).second;
  std::vector<uint8_t> wide(static_cast<size_t>(z - a));
  OCIFS_RETURN_IF_ERROR(ReadExactly(*compressed_, a, wide));
  for (size_t s = first; s <= last; ++s) {
    const RawSpan& r = spans[s];
    // This span's part of the read, in decoded bytes, then its units in the blob.
    const uint64_t from = std::max(offset, r.out), to = std::min(end, r.out + r.size);
    const auto [ua, ub] = table_->WidenToUnits(s, r.in + (from - r.out), r.in + (to - r.out));
    const std::span<const uint8_t> units(wide.data() + (ua - a), static_cast<size_t>(ub - ua));
    if (!table_->Matches(s, ua, units)) {
      return DataLoss("raw span table of " + compressed_->Describe() + " is wrong: the blob's bytes " +
                      std::to_string(ua) + ".." + std::to_string(ub) + " do not match their CRC-32s");
    }
    std::copy_n(wide.data() + (r.in + (from - r.out) - a), to - from, dst.data() + (from - offset));
    if (record_) record_(ua, ub - ua);
  }
  raw_read_.fetch_add(dst.size(), std::memory_order_relaxed);
  return Status::Ok();
}

Result<size_t> RawSpanSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size() || buf.empty()) return size_t{0};
  const uint64_t end = offset + std::min<uint64_t>(buf.size(), size() - offset);
  uint64_t pos = offset;
  while (pos < end) {
    const std::span<uint8_t> rest = buf.subspan(static_cast<size_t>(pos - offset));
    if (const size_t s = table_->SpanAt(pos); s != RawSpanTable::npos) {
      const size_t last = RunEnd(s, end);
      const RawSpan& l = table_->spans()[last];
      const uint64_t n = std::min(end, l.out + l.size) - pos;
      OCIFS_RETURN_IF_ERROR(ReadRaw(s, last, pos, rest.first(static_cast<size_t>(n))));
      pos += n;
    } else {
      const uint64_t n = std::min(end, table_->NextSpanStart(pos)) - pos;
      OCIFS_RETURN_IF_ERROR(ReadExactly(*decoded_, pos, rest.first(static_cast<size_t>(n))));
      pos += n;
    }
  }
  return static_cast<size_t>(end - offset);
}

void RawSpanSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= size() || length == 0) return;
  const uint64_t end = offset + std::min(length, size() - offset);
  uint64_t pos = offset;
  while (pos < end) {
    if (const size_t s = table_->SpanAt(pos); s != RawSpanTable::npos) {
      const size_t last = RunEnd(s, end);
      const RawSpan& f = table_->spans()[s];
      const RawSpan& l = table_->spans()[last];
      const uint64_t stop = std::min(end, l.out + l.size);
      const uint64_t a = table_->WidenToUnits(s, f.in + (pos - f.out), f.in + (pos - f.out) + 1).first;
      const uint64_t z = table_->WidenToUnits(last, l.in + (stop - 1 - l.out), l.in + (stop - l.out)).second;
      compressed_->Prefetch(a, z - a);
      pos = stop;
    } else {
      const uint64_t stop = std::min(end, table_->NextSpanStart(pos));
      decoded_->Prefetch(pos, stop - pos);
      pos = stop;
    }
  }
}

}  // namespace ocifs
