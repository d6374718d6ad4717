#include "decode/raw_span_table.h"

#include <algorithm>
#include <bit>

#include "base/crc32.h"
#include "base/little_endian.h"

namespace ocifs {
namespace {

constexpr char kRawSpanMagic[8] = {'O', 'C', 'I', 'F', 'S', 'R', 'A', 'W'};

uint64_t RawUnitCount(const RawSpan& s, uint32_t unit) {
  const uint64_t first = s.in / unit, last = (s.in + s.size - 1) / unit;
  return last - first + 1;
}

Status RawTableError(const std::string& why) { return Corrupt("raw span table: " + why); }

}  // namespace

Result<RawSpanTable> RawSpanTable::Make(uint64_t blob_size, uint64_t decoded_size, uint32_t unit,
                                        std::vector<RawSpan> spans, std::vector<uint32_t> crcs) {
  if (unit < 512 || unit > (1u << 20) || !std::has_single_bit(unit)) {
    return RawTableError("unit " + std::to_string(unit) + " is not a power of two in 512..1 MiB");
  }
  RawSpanTable t;
  t.blob_size_ = blob_size;
  t.decoded_size_ = decoded_size;
  t.unit_ = unit;
  uint64_t units = 0;
  for (size_t k = 0; k < spans.size(); ++k) {
    const RawSpan& s = spans[k];
    const std::string which = "span " + std::to_string(k);
    if (s.size == 0) return RawTableError(which + " is empty");
    if (s.in > blob_size || s.size > blob_size - s.in) return RawTableError(which + " lies past the blob's end");
    if (s.out > decoded_size || s.size > decoded_size - s.out) return RawTableError(which + " lies past the decoded end");
    if (k > 0 && (s.in < spans[k - 1].in + spans[k - 1].size || s.out < spans[k - 1].out + spans[k - 1].size)) {
      return RawTableError(which + " overlaps or precedes the span before it");
    }
    t.first_crc_.push_back(units);
    units += RawUnitCount(s, unit);
    t.raw_bytes_ += s.size;
  }
  if (crcs.size() != units) {
    return RawTableError(std::to_string(crcs.size()) + " unit checksums for " + std::to_string(units) + " units");
  }
  t.spans_ = std::move(spans);
  t.crcs_ = std::move(crcs);
  return t;
}

std::string RawSpanTable::Serialize() const {
  std::string out(kRawSpanMagic, sizeof kRawSpanMagic);
  AppendLe<uint32_t>(out, kVersion);
  AppendLe<uint32_t>(out, unit_);
  AppendLe<uint64_t>(out, blob_size_);
  AppendLe<uint64_t>(out, decoded_size_);
  AppendLe<uint64_t>(out, spans_.size());
  AppendLe<uint64_t>(out, crcs_.size());
  for (const RawSpan& s : spans_) {
    AppendLe<uint64_t>(out, s.in);
    AppendLe<uint64_t>(out, s.out);
    AppendLe<uint32_t>(out, s.size);
  }
  for (uint32_t c : crcs_) AppendLe<uint32_t>(out, c);
  AppendLe<uint32_t>(out, Crc32(std::span(reinterpret_cast<const uint8_t*>(out.data()), out.size())));
  return out;
}

Result<RawSpanTable> RawSpanTable::Parse(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxFileBytes) return RawTableError("larger than 64 MiB");
  if (bytes.size() < kHeaderSize + 4) return RawTableError("truncated header (" + std::to_string(bytes.size()) + " bytes)");
  if (!std::equal(bytes.begin(), bytes.begin() + 8, kRawSpanMagic)) return RawTableError("bad magic (not a raw span table)");
  const uint8_t* p = bytes.data();
  if (const uint32_t v = LoadLe<uint32_t>(p + 8); v != kVersion) {
    return Unsupported("raw span table: version " + std::to_string(v) + " (this build reads 1)");
  }
  const uint32_t unit = LoadLe<uint32_t>(p + 12);
  const uint64_t blob_size = LoadLe<uint64_t>(p + 16), decoded_size = LoadLe<uint64_t>(p + 24);
  const uint64_t n = LoadLe<uint64_t>(p + 32), m = LoadLe<uint64_t>(p + 40);
  const uint64_t room = bytes.size() - kHeaderSize - 4;
  if (n > room / kRecordSize || m > (room - n * kRecordSize) / 4 || kHeaderSize + n * kRecordSize + m * 4 + 4 != bytes.size()) {
    return RawTableError("span count " + std::to_string(n) + " and checksum count " + std::to_string(m) +
               " do not fit a file of " + std::to_string(bytes.size()) + " bytes");
  }
  const size_t body = bytes.size() - 4;
  if (Crc32(bytes.first(body)) != LoadLe<uint32_t>(p + body)) return RawTableError("the file's CRC-32 does not match");
  std::vector<RawSpan> spans(n);
  const uint8_t* r = p + kHeaderSize;
  for (RawSpan& s : spans) {
    s.in = LoadLe<uint64_t>(r);
    s.out = LoadLe<uint64_t>(r + 8);
    s.size = LoadLe<uint32_t>(r + 16);
    r += kRecordSize;
  }
  std::vector<uint32_t> crcs(m);
  for (uint32_t& c : crcs) c = LoadLe<uint32_t>(r), r += 4;
  return Make(blob_size, decoded_size, unit, std::move(spans), std::move(crcs));
}

size_t RawSpanTable::FirstAfter(uint64_t at, uint64_t RawSpan::*field) const {
  auto it = std::upper_bound(spans_.begin(), spans_.end(), at,
                             [field](uint64_t v, const RawSpan& s) { return v < s.*field; });
  return static_cast<size_t>(it - spans_.begin());
}

size_t RawSpanTable::Holding(uint64_t at, uint64_t RawSpan::*field) const {
  const size_t k = FirstAfter(at, field);
  return k > 0 && at < spans_[k - 1].*field + spans_[k - 1].size ? k - 1 : npos;
}

size_t RawSpanTable::SpanAt(uint64_t out) const { return Holding(out, &RawSpan::out); }

uint64_t RawSpanTable::NextSpanStart(uint64_t out) const {
  const size_t k = FirstAfter(out, &RawSpan::out);
  return k == spans_.size() ? decoded_size_ : spans_[k].out;
}

size_t RawSpanTable::SpanAtInput(uint64_t in) const { return Holding(in, &RawSpan::in); }

size_t RawSpanTable::FirstSpanAfterInput(uint64_t in) const {
  const size_t k = FirstAfter(in, &RawSpan::in);
  return k == spans_.size() ? npos : k;
}

uint64_t RawSpanTable::UnitsOf(size_t s) const { return RawUnitCount(spans_[s], unit_); }

std::pair<uint64_t, uint64_t> RawSpanTable::WidenToUnits(size_t s, uint64_t from, uint64_t to) const {
  const RawSpan& r = spans_[s];
  const uint64_t a = std::max(r.in, from / unit_ * unit_);
  const uint64_t b = std::min(r.in + r.size, (to + unit_ - 1) / unit_ * unit_);
  return {a, b};
}

bool RawSpanTable::Matches(size_t s, uint64_t from, std::span<const uint8_t> bytes) const {
  const RawSpan& r = spans_[s];
  if (from < r.in || bytes.size() > r.in + r.size - from) return false;
  uint64_t at = from;
  size_t done = 0;
  while (done < bytes.size()) {
    const uint64_t k = at / unit_ - r.in / unit_;
    const uint64_t unit_end = std::min(r.in + r.size, (at / unit_ + 1) * unit_);
    if (at != std::max(r.in, at / unit_ * unit_)) return false;  // not a unit's start
    const size_t n = static_cast<size_t>(unit_end - at);
    if (n > bytes.size() - done) return false;  // not a whole unit
    if (Crc32(bytes.subspan(done, n)) != crcs_[first_crc_[s] + k]) return false;
    done += n;
    at += n;
  }
  return true;
}

void RawSpanTableBuilder::Add(uint64_t in, uint64_t out, std::span<const uint8_t> payload) {
  if (payload.size() < min_size_ || payload.empty()) return;
  const RawSpan s{in, out, static_cast<uint32_t>(payload.size())};
  uint64_t at = in;
  size_t done = 0;
  while (done < payload.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>((at / unit_ + 1) * unit_ - at, payload.size() - done));
    crcs_.push_back(Crc32(payload.subspan(done, n)));
    done += n;
    at += n;
  }
  spans_.push_back(s);
}

Result<RawSpanTable> RawSpanTableBuilder::Finish(uint64_t blob_size, uint64_t decoded_size) {
  return RawSpanTable::Make(blob_size, decoded_size, unit_, std::move(spans_), std::move(crcs_));
}

}  // namespace ocifs
