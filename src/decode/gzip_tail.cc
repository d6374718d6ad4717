#include "decode/gzip_tail.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "base/little_endian.h"

namespace ocifs {
namespace {

constexpr size_t kWindow = 32768;

// A stored block's LEN, NLEN at `at` (LEN > 0, NLEN its complement): its length, or -1.
long StoredLength(std::span<const uint8_t> d, size_t at) {
  if (at + 4 > d.size()) return -1;
  const unsigned len = d[at] | (d[at + 1] << 8);
  const unsigned nlen = d[at + 2] | (d[at + 3] << 8);
  if ((len ^ nlen) != 0xffff || len == 0) return -1;
  return static_cast<long>(len);
}

// Raw inflate of `in` with a 32 KiB dictionary. Both streams of a pair are
// fed alike, so they produce the same number of bytes at each step (inflate's
// course never depends on the window's byte values).
class RawInflate {
 public:
  RawInflate() {
    ok_ = inflateInit2(&z_, -15) == Z_OK;
  }
  ~RawInflate() {
    if (ok_) inflateEnd(&z_);
  }
  RawInflate(const RawInflate&) = delete;
  RawInflate& operator=(const RawInflate&) = delete;
  bool Start(std::span<const uint8_t> dictionary, std::span<const uint8_t> in) {
    if (!ok_ || inflateSetDictionary(&z_, dictionary.data(), static_cast<uInt>(dictionary.size())) != Z_OK) return false;
    z_.next_in = const_cast<Bytef*>(in.data());
    z_.avail_in = static_cast<uInt>(in.size());
    return true;
  }
  // Fills `out`; the count produced, and the return code in *ret.
  size_t Step(std::span<uint8_t> out, int* ret) {
    z_.next_out = out.data();
    z_.avail_out = static_cast<uInt>(out.size());
    *ret = inflate(&z_, Z_NO_FLUSH);
    return out.size() - z_.avail_out;
  }
  uInt avail_in() const { return z_.avail_in; }

 private:
  z_stream z_{};
  bool ok_ = false;
};

// Inflates `in` (a raw deflate stream that must end exactly at in's end)
// after `known` (output already decoded just before it), twice, with the
// window before `known` filled with 0x00 and then 0xff. Appends the output to
// *bytes and the ranges that differ to *unknown.
enum class Inflated { kWhole, kNotAStream, kTooLong };
Inflated InflatePair(std::span<const uint8_t> in, GzipTail::Bytes* bytes,
                     std::vector<std::pair<uint64_t, uint64_t>>* unknown, uint64_t limit) {
  std::array<std::vector<uint8_t>, 2> dict;
  for (int k = 0; k < 2; ++k) {
    dict[k].assign(kWindow, k == 0 ? 0x00 : 0xff);
    const size_t known = static_cast<size_t>(std::min<uint64_t>(kWindow, bytes->size()));
    bytes->CopyOut(bytes->size() - known, std::span(dict[k]).last(known));
  }
  RawInflate a, b;
  if (!a.Start(dict[0], in) || !b.Start(dict[1], in)) return Inflated::kNotAStream;
  std::vector<uint8_t> out_a(1 << 16), out_b(1 << 16);
  for (;;) {
    int ret_a = Z_OK, ret_b = Z_OK;
    const size_t n = a.Step(out_a, &ret_a);
    const size_t m = b.Step(out_b, &ret_b);
    if (n != m || ret_a != ret_b) return Inflated::kNotAStream;  // not for a real stream; never trusted
    if (ret_a != Z_OK && ret_a != Z_STREAM_END) return Inflated::kNotAStream;
    if (bytes->size() + n > limit) return Inflated::kTooLong;
    const uint64_t base = bytes->size();
    bytes->Append(std::span<const uint8_t>(out_a).first(n));
    for (size_t i = 0; i < n; ++i) {
      if (out_a[i] == out_b[i]) continue;
      const uint64_t at = base + i;
      if (!unknown->empty() && unknown->back().second == at) {
        unknown->back().second = at + 1;
      } else {
        unknown->emplace_back(at, at + 1);
      }
    }
    if (ret_a == Z_STREAM_END) {
      return a.avail_in() == 0 && b.avail_in() == 0 ? Inflated::kWhole : Inflated::kNotAStream;
    }
    if (n == 0 && a.avail_in() == 0) return Inflated::kNotAStream;  // the input ended before the final block
  }
}

}  // namespace

Result<std::shared_ptr<const GzipTail>> GzipTail::Decode(const ByteSource& compressed, uint64_t data_end,
                                                         uint64_t fetch_bytes) {
  const uint64_t size = compressed.size();
  if (size == ByteSource::kUnknownSize || size < 18) return NotFound("blob of unknown or tiny size");
  const uint64_t n = std::min(size, fetch_bytes);
  std::vector<uint8_t> tail(static_cast<size_t>(n));
  OCIFS_RETURN_IF_ERROR(ReadExactly(compressed, size - n, tail));
  return DecodeBytes(tail, size, data_end);
}

Result<std::shared_ptr<const GzipTail>> GzipTail::DecodeBytes(std::span<const uint8_t> tail, uint64_t blob_size,
                                                              uint64_t data_end) {
  if (tail.size() < 18 || tail.size() > blob_size) return NotFound("no gzip trailer");
  const uint32_t isize = LoadLe<uint32_t>(tail.data() + tail.size() - 4);
  const std::span<const uint8_t> deflate = tail.first(tail.size() - 8);
  // The layer's size: ISIZE mod 2^32, the archive's end kMinTarEnd..kMaxTarEnd after data_end.
  uint64_t total = (data_end + kMinTarEnd) - ((data_end + kMinTarEnd) % (1ull << 32)) + isize;
  if (total < data_end + kMinTarEnd) total += 1ull << 32;
  if (total > data_end + kMaxTarEnd) return NotFound("the trailer's size does not end the archive after its last entry");
  const uint64_t tar_end = total - data_end;

  size_t tried = 0;
  for (size_t b = 0; b + 4 <= deflate.size(); ++b) {
    // A stored block (LEN at b) followed by another (its header byte, then LEN at next + 1):
    // byte aligned, and two checks no stretch of compressed data passes by chance.
    const long len = StoredLength(deflate, b);
    if (len < 0) continue;
    const size_t next = b + 4 + static_cast<size_t>(len);
    if (next + 5 > deflate.size() || deflate[next] > 1 || StoredLength(deflate, next + 1) < 0) continue;
    ++tried;
    Bytes bytes;
    bytes.Append(deflate.subspan(b + 4, static_cast<size_t>(len)));
    std::vector<std::pair<uint64_t, uint64_t>> unknown;
    const Inflated inflated = InflatePair(deflate.subspan(next), &bytes, &unknown, kMaxOutput);
    if (inflated == Inflated::kTooLong) b = next;  // a later boundary inflates to less
    if (inflated != Inflated::kWhole) continue;
    if (bytes.size() < tar_end) continue;
    // The archive's end: exact zeros from data_end on.
    const uint64_t end_from = bytes.size() - tar_end;
    bool zeros = true;
    for (uint64_t at = end_from; zeros && at < bytes.size(); ++at) zeros = bytes.At(at) == 0;
    const bool known = unknown.empty() || unknown.back().second <= end_from;
    if (!zeros || !known) return NotFound("the bytes after the last entry's data are not the archive's end");
    return std::make_shared<const GzipTail>(total - bytes.size(), std::move(bytes), std::move(unknown));
  }
  return NotFound(tried ? "no block boundary in the blob's last bytes decodes to its trailer"
                        : "no stored blocks in the blob's last bytes");
}

uint64_t GzipTail::unknown_bytes() const {
  uint64_t n = 0;
  for (const auto& [from, to] : unknown_) n += to - from;
  return n;
}

bool GzipTail::Copy(uint64_t offset, std::span<uint8_t> out) const {
  if (offset < start_ || offset > total() || out.size() > total() - offset) return false;
  const uint64_t from = offset - start_, to = from + out.size();
  // The first unknown range ending after `from` must start at or after `to`.
  auto it = std::upper_bound(unknown_.begin(), unknown_.end(), from,
                             [](uint64_t at, const std::pair<uint64_t, uint64_t>& r) { return at < r.second; });
  if (it != unknown_.end() && it->first < to) return false;
  bytes_.CopyOut(from, out);
  return true;
}

void GzipTail::Bytes::Append(std::span<const uint8_t> data) {
  while (!data.empty()) {
    if (blocks_.empty() || blocks_.back().size() == kBlock) {
      blocks_.emplace_back();
      blocks_.back().reserve(kBlock);
    }
    std::vector<uint8_t>& last = blocks_.back();
    const size_t n = std::min(data.size(), kBlock - last.size());
    last.insert(last.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
    data = data.subspan(n);
    size_ += n;
  }
}

void GzipTail::Bytes::CopyOut(uint64_t at, std::span<uint8_t> out) const {
  while (!out.empty()) {
    const std::vector<uint8_t>& block = blocks_[at / kBlock];
    const size_t in = static_cast<size_t>(at % kBlock);
    const size_t n = std::min(out.size(), block.size() - in);
    std::memcpy(out.data(), block.data() + in, n);
    out = out.subspan(n);
    at += n;
  }
}

}  // namespace ocifs
