#include "decode/zstd_block_tracker.h"

#include <bit>
#include <string>

namespace ocifs {
namespace {

constexpr uint64_t kMaxBlock = 128 * 1024;

// Reads a sequences bitstream backwards (RFC 8878 4.1): from the bit below
// the final 1 of the last byte towards the first byte.
class BackwardBits {
 public:
  explicit BackwardBits(std::span<const uint8_t> in) : in_(in) {
    if (in.empty() || in.back() == 0) {
      bad_ = true;
      return;
    }
    pos_ = in.size() * 8 - (8 - static_cast<size_t>(std::bit_width(in.back()))) - 1;
  }
  uint64_t Read(uint32_t n) {
    if (n == 0) return 0;
    if (n > pos_) {
      bad_ = true;
      pos_ = 0;
      return 0;
    }
    pos_ -= n;
    uint64_t v = 0;
    const size_t byte = pos_ / 8;
    for (size_t i = 0; i < 8 && byte + i < in_.size(); ++i) v |= static_cast<uint64_t>(in_[byte + i]) << (8 * i);
    return (v >> (pos_ % 8)) & ((uint64_t{1} << n) - 1);
  }
  bool bad() const { return bad_; }
  bool empty() const { return pos_ == 0; }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool bad_ = false;
};

// The n (<= 8) bytes at `at`, little-endian.
uint64_t Le(std::span<const uint8_t> in, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(in[at + i]) << (8 * i);
  return v;
}

}  // namespace

Status ZstdBlockTracker::ReadTable(ZstdSeqTable t, uint32_t mode, std::span<const uint8_t> in, size_t* pos) {
  ZstdTableState& ts = state_.tables[static_cast<size_t>(t)];
  switch (mode) {
    case 0:
      ts.mode = ZstdTableState::Mode::kPredefined;
      ts.description.clear();
      ts.table = ZstdFseTable::Build(ZstdPredefined(t));
      return Status::Ok();
    case 1:
      if (*pos >= in.size()) return Corrupt("sequences section: truncated RLE table");
      if (in[*pos] > ZstdMaxSymbol(t)) return Corrupt("sequences section: RLE symbol out of range");
      ts.mode = ZstdTableState::Mode::kRle;
      ts.rle_symbol = in[*pos];
      ts.description.clear();
      ts.table = ZstdFseTable::Rle(in[*pos]);
      ++*pos;
      return Status::Ok();
    case 2: {
      size_t used = 0;
      OCIFS_ASSIGN_OR_RETURN(ZstdNormCounts nc, ReadZstdNormCounts(in.subspan(*pos), t, &used));
      ts.mode = ZstdTableState::Mode::kFse;
      ts.description.assign(in.begin() + static_cast<ptrdiff_t>(*pos),
                            in.begin() + static_cast<ptrdiff_t>(*pos + used));
      ts.table = ZstdFseTable::Build(nc);
      *pos += used;
      return Status::Ok();
    }
    default:
      if (ts.mode == ZstdTableState::Mode::kNone) return Corrupt("sequences section: repeat mode without a table");
      reused_table_ = true;
      return Status::Ok();
  }
}

Result<uint64_t> ZstdBlockTracker::CompressedBlock(std::span<const uint8_t> in, uint64_t out_pos,
                                                   const OnMatch& on_match) {
  if (in.empty()) return Corrupt("compressed block: empty");
  reused_huffman_ = (in[0] & 3) == 3;
  reused_table_ = false;
  // Literals section header.
  const uint8_t b0 = in[0];
  const uint32_t type = b0 & 3;
  const uint32_t format = (b0 >> 2) & 3;
  uint64_t literals = 0;
  size_t pos = 0;
  if (type <= 1) {
    const size_t header = format == 1 ? 2 : format == 3 ? 3 : 1;
    if (in.size() < header) return Corrupt("literals section: truncated header");
    const uint64_t v = Le(in, 0, header);
    literals = format == 0 || format == 2 ? (b0 >> 3) : (v >> 4);
    pos = header + (type == 0 ? literals : 1);
  } else {
    const size_t header = format <= 1 ? 3 : format == 2 ? 4 : 5;
    if (in.size() < header) return Corrupt("literals section: truncated header");
    const uint64_t v = Le(in, 0, header);
    const uint32_t size_bits = format <= 1 ? 10 : format == 2 ? 14 : 18;
    const uint64_t mask = (uint64_t{1} << size_bits) - 1;
    literals = (v >> 4) & mask;
    const uint64_t compressed = (v >> (4 + size_bits)) & mask;
    if (type == 2) {
      if (header >= in.size()) return Corrupt("literals section: no Huffman tree description");
      const uint8_t h = in[header];
      const size_t len = h < 128 ? 1 + h : 1 + (h - 127 + 1) / 2;
      if (header + len > in.size() || len > compressed) return Corrupt("literals section: truncated Huffman tree");
      state_.huffman.assign(in.begin() + static_cast<ptrdiff_t>(header),
                            in.begin() + static_cast<ptrdiff_t>(header + len));
    } else if (state_.huffman.empty()) {
      return Corrupt("literals section: treeless literals without a Huffman tree");
    }
    pos = header + compressed;
  }
  if (pos > in.size()) return Corrupt("literals section: larger than its block");
  if (literals > kMaxBlock) return Corrupt("literals section: more than 128 KiB");
  // Sequences section header.
  if (pos >= in.size()) return Corrupt("sequences section: missing");
  uint32_t nb_seq = in[pos];
  if (nb_seq == 0) {
    if (pos + 1 != in.size()) return Corrupt("sequences section: bytes after zero sequences");
    return literals;
  }
  if (nb_seq == 255) {
    if (pos + 3 > in.size()) return Corrupt("sequences section: truncated header");
    nb_seq = in[pos + 1] + (static_cast<uint32_t>(in[pos + 2]) << 8) + 0x7F00;
    pos += 3;
  } else if (nb_seq >= 128) {
    if (pos + 2 > in.size()) return Corrupt("sequences section: truncated header");
    nb_seq = ((nb_seq - 128) << 8) + in[pos + 1];
    pos += 2;
  } else {
    pos += 1;
  }
  if (pos >= in.size()) return Corrupt("sequences section: no modes byte");
  const uint8_t modes = in[pos++];
  if ((modes & 3) != 0) return Corrupt("sequences section: reserved bits set");
  OCIFS_RETURN_IF_ERROR(ReadTable(ZstdSeqTable::kLiteralLength, modes >> 6, in, &pos));
  OCIFS_RETURN_IF_ERROR(ReadTable(ZstdSeqTable::kOffset, (modes >> 4) & 3, in, &pos));
  OCIFS_RETURN_IF_ERROR(ReadTable(ZstdSeqTable::kMatchLength, (modes >> 2) & 3, in, &pos));
  if (pos > in.size()) return Corrupt("sequences section: truncated tables");
  return DecodeSequences(in.subspan(pos), nb_seq, out_pos, literals, on_match);
}

Result<uint64_t> ZstdBlockTracker::DecodeSequences(std::span<const uint8_t> bits, uint32_t nb_seq, uint64_t pos,
                                                   uint64_t literals, const OnMatch& on_match) {
  const ZstdFseTable& ll = state_.tables[0].table;
  const ZstdFseTable& of = state_.tables[1].table;
  const ZstdFseTable& ml = state_.tables[2].table;
  BackwardBits br(bits);
  uint64_t ll_state = br.Read(ll.accuracy_log);
  uint64_t of_state = br.Read(of.accuracy_log);
  uint64_t ml_state = br.Read(ml.accuracy_log);
  const uint64_t start = pos;
  uint64_t literals_used = 0;
  auto& reps = state_.reps;
  for (uint32_t i = 0; i < nb_seq; ++i) {
    if (br.bad()) break;
    const uint32_t of_code = of.cells[of_state].symbol;
    const uint32_t ml_code = ml.cells[ml_state].symbol;
    const uint32_t ll_code = ll.cells[ll_state].symbol;
    if (of_code > 31 || ml_code > 52 || ll_code > 35) return Corrupt("sequences: code out of range");
    const uint64_t ov = (uint64_t{1} << of_code) + br.Read(of_code);
    const ZstdCodeValue mlv = ZstdMatchLengthCode(ml_code);
    const uint64_t match = mlv.base + br.Read(mlv.bits);
    const ZstdCodeValue llv = ZstdLiteralLengthCode(ll_code);
    const uint64_t lit = llv.base + br.Read(llv.bits);
    uint64_t offset;
    if (ov > 3) {
      offset = ov - 3;
      reps = {static_cast<uint32_t>(offset), reps[0], reps[1]};
      origin_ = {3, origin_[0], origin_[1]};
    } else {
      const uint32_t idx = static_cast<uint32_t>(ov) - 1 + (lit == 0 ? 1 : 0);
      const uint32_t slot = idx == 3 ? 0 : idx;
      if (origin_[slot] < 3) used_reps_ |= 1u << origin_[slot];
      if (idx == 0) {
        offset = reps[0];
      } else if (idx == 1) {
        offset = reps[1];
        reps = {reps[1], reps[0], reps[2]};
        origin_ = {origin_[1], origin_[0], origin_[2]};
      } else if (idx == 2) {
        offset = reps[2];
        reps = {reps[2], reps[0], reps[1]};
        origin_ = {origin_[2], origin_[0], origin_[1]};
      } else {
        offset = reps[0] - 1;
        reps = {static_cast<uint32_t>(offset), reps[0], reps[1]};
        origin_ = {3, origin_[0], origin_[1]};
      }
    }
    if (offset == 0) return Corrupt("sequences: offset 0");
    literals_used += lit;
    if (literals_used > literals) return Corrupt("sequences: more literals than the literals section holds");
    pos += lit;
    if (offset > pos) return Corrupt("sequences: offset before the start of the frame");
    if (on_match) on_match(Match{pos, offset, match});
    pos += match;
    if (i + 1 < nb_seq) {
      const auto& lc = ll.cells[ll_state];
      ll_state = lc.base + br.Read(lc.nb_bits);
      const auto& mc = ml.cells[ml_state];
      ml_state = mc.base + br.Read(mc.nb_bits);
      const auto& oc = of.cells[of_state];
      of_state = oc.base + br.Read(oc.nb_bits);
    }
  }
  if (br.bad() || !br.empty()) return Corrupt("sequences: bitstream does not end where its sequences do");
  const uint64_t size = pos - start + (literals - literals_used);
  if (size > kMaxBlock) return Corrupt("compressed block: decodes to more than 128 KiB");
  return size;
}

}  // namespace ocifs
