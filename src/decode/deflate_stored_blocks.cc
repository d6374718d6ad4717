#include "decode/deflate_stored_blocks.h"

#include <optional>
#include <vector>

#include "decode/gzip_inflate.h"
#include "decode/sequential_reader.h"

namespace ocifs {
namespace {

constexpr size_t kStoredScanChunk = 256u << 10;

// A stored block whose header starts in the `unused` high bits of the byte
// before `pos` (or at `pos` when none are unused): where its LEN field lies,
// if it is one. `bytes` are the blob's bytes from pos - 1 (at least 6 of them
// where the blob has them).
std::optional<uint64_t> StoredLenAt(uint64_t pos, int unused, std::span<const uint8_t> bytes) {
  if (bytes.size() < 2) return std::nullopt;
  // The next 3 bits: BFINAL, then BTYPE (00: stored).
  uint32_t bits = unused > 0 ? static_cast<uint32_t>(bytes[0]) >> (8 - unused) : 0;
  bits |= static_cast<uint32_t>(bytes[1]) << unused;
  if (((bits >> 1) & 3) != 0) return std::nullopt;
  return unused >= 3 ? pos : pos + 1;  // the header's byte is padded out
}

}  // namespace

Result<RawSpanTable> FindStoredBlocks(const ByteSource& blob, uint32_t unit, uint32_t min_size) {
  if (blob.size() == ByteSource::kUnknownSize) return InvalidArgument("stored blocks: blob of unknown size");
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return Corrupt("gzip data of " + blob.Describe() + " corrupt at compressed offset " + std::to_string(at) + ": " + why);
  };
  RawSpanTableBuilder table(unit, min_size);
  SequentialReader reader(blob, 0);
  ZInflateStream z;
  OCIFS_RETURN_IF_ERROR(z.Init(31));
  std::vector<uint8_t> out(kStoredScanChunk);
  std::vector<uint8_t> payload;
  uint64_t out_total = 0;
  bool member_has_input = false;
  for (;;) {
    OCIFS_ASSIGN_OR_RETURN(auto in, reader.Next());
    if (in.empty()) {
      if (!member_has_input && out_total + reader.position() > 0) break;
      return corrupt(reader.position(), "unexpected end of data (truncated)");
    }
    z->next_in = const_cast<Bytef*>(in.data());
    z->avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
    z->next_out = out.data();
    z->avail_out = static_cast<uInt>(out.size());
    const uInt in_before = z->avail_in, out_before = z->avail_out;
    const int ret = inflate(z.get(), Z_BLOCK);
    const size_t consumed = in_before - z->avail_in;
    const size_t produced = out_before - z->avail_out;
    reader.Skip(consumed);
    if (consumed > 0) member_has_input = true;
    out_total += produced;
    if (ret == Z_STREAM_END) {
      member_has_input = false;
      OCIFS_RETURN_IF_ERROR(z.Init(31));
      continue;
    }
    if (ret != Z_OK && ret != Z_BUF_ERROR) return corrupt(reader.position(), z.Message("inflate failed"));
    if (ret == Z_BUF_ERROR && consumed == 0 && produced == 0) return corrupt(reader.position(), "inflate made no progress");
    // At a block boundary (or the end of a member's header) with more blocks to come.
    if (!(z->data_type & 128) || (z->data_type & 64)) continue;
    const uint64_t pos = reader.position();
    const int unused = z->data_type & 7;
    if (pos == 0) continue;
    std::vector<uint8_t> head(std::min<uint64_t>(6, blob.size() - (pos - 1)));
    OCIFS_RETURN_IF_ERROR(ReadExactly(blob, pos - 1, head));
    const std::optional<uint64_t> len_at = StoredLenAt(pos, unused, head);
    if (!len_at || *len_at + 4 > blob.size()) continue;
    uint8_t len_bytes[4];
    OCIFS_RETURN_IF_ERROR(ReadExactly(blob, *len_at, len_bytes));
    const uint32_t len = len_bytes[0] | (len_bytes[1] << 8), nlen = len_bytes[2] | (len_bytes[3] << 8);
    if (len != (~nlen & 0xFFFF)) return corrupt(*len_at, "a stored block's LEN and NLEN disagree");
    if (len < min_size || *len_at + 4 + len > blob.size()) continue;
    payload.resize(len);
    OCIFS_RETURN_IF_ERROR(ReadExactly(blob, *len_at + 4, payload));
    table.Add(*len_at + 4, out_total, payload);
  }
  return table.Finish(blob.size(), out_total);
}

}  // namespace ocifs
