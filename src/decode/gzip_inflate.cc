#include "decode/gzip_inflate.h"

#include <algorithm>

#include "decode/sequential_reader.h"

namespace ocifs {

Status FeedBlockHeader(ZInflateStream& z, std::span<const uint8_t> header, unsigned bits) {
  if (bits == 0 || header.size() != (bits + 7) / 8) return Corrupt("its block header is not " + std::to_string(bits) + " bits");
  const size_t whole = bits / 8;
  if (whole > 0) {
    // The header makes no output: inflate only takes its bits in.
    uint8_t none = 0;
    z->next_in = const_cast<Bytef*>(header.data());
    z->avail_in = static_cast<uInt>(whole);
    z->next_out = &none;
    z->avail_out = 0;
    const int ret = inflate(z.get(), Z_NO_FLUSH);
    if ((ret != Z_OK && ret != Z_BUF_ERROR) || z->avail_in != 0 || z->total_out != 0) {
      return Corrupt("its block header does not decode: " + z.Message("inflate failed"));
    }
  }
  if (const unsigned rest = bits % 8; rest > 0) {
    if (inflatePrime(z.get(), static_cast<int>(rest), header[whole] & ((1u << rest) - 1)) != Z_OK) {
      return Internal("inflatePrime failed");
    }
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> InflateFromCheckpoint(const ByteSource& compressed, const GzipCheckpoint& cp,
                                                   size_t length, uint64_t compressed_hint,
                                                   const std::string& layer,
                                                   std::vector<uint64_t>* input_marks) {
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return Corrupt("gzip data of " + layer + " corrupt at compressed offset " + std::to_string(at) + ": " + why);
  };
  // With a hint, exactly the span's bytes (kSpanReadPast): a profile that
  // names them serves the read from its pieces, however short the span.
  size_t piece = compressed_hint == 0
                     ? (1u << 20)
                     : static_cast<size_t>(std::clamp<uint64_t>(compressed_hint + kSpanReadPast, kSpanReadPast,
                                                                SequentialReader::kDefaultPiece));
  bool raw = !cp.member_start;
  uint64_t start = cp.in - (raw && cp.bits > 0 ? 1 : 0);
  SequentialReader reader(compressed, start, piece);
  ZInflateStream z;
  OCIFS_RETURN_IF_ERROR(z.Init(raw ? -15 : 31));
  if (raw) {
    if (cp.window_size > 0 || cp.inside_block()) {
      std::vector<uint8_t> window(cp.window_size), header;
      OCIFS_RETURN_IF_ERROR(DecompressWindow(cp, window, &header));
      // Raw inflate takes its dictionary at any time; it stays apart from the bits fed.
      if (cp.window_size > 0 && inflateSetDictionary(z.get(), window.data(), cp.window_size) != Z_OK) {
        return Internal("inflateSetDictionary failed");
      }
      if (cp.inside_block()) {
        OCIFS_RETURN_IF_ERROR(FeedBlockHeader(z, header, cp.header_bits).WithContext(
            "gzip checkpoint of " + layer + " at decompressed offset " + std::to_string(cp.out)));
      }
    }
    if (cp.bits > 0) {
      OCIFS_ASSIGN_OR_RETURN(auto b, reader.Peek(1));
      if (b.empty()) return corrupt(start, "unexpected end of data at a checkpoint");
      int c = b[0];
      reader.Skip(1);
      if (inflatePrime(z.get(), cp.bits, c >> (8 - cp.bits)) != Z_OK) return Internal("inflatePrime failed");
    }
  }
  std::vector<uint8_t> out(length);
  size_t produced = 0;
  if (input_marks) {
    input_marks->clear();
    input_marks->push_back(cp.in);
  }
  while (produced < length) {
    OCIFS_ASSIGN_OR_RETURN(auto in, reader.Next());
    if (in.empty()) {
      // End of the blob: fine between members, truncation inside one.
      if (z->total_in == 0 && !raw) break;
      return corrupt(reader.position(), "unexpected end of data (truncated)");
    }
    z->next_in = const_cast<Bytef*>(in.data());
    z->avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
    z->next_out = out.data() + produced;
    size_t room = length - produced;
    // With marks: stop at the next multiple of kInputMarkBytes, to note the input there.
    if (input_marks) room = std::min<size_t>(room, kInputMarkBytes - produced % kInputMarkBytes);
    z->avail_out = static_cast<uInt>(std::min<size_t>(room, UINT32_MAX));
    uInt avail_in_before = z->avail_in, avail_out_before = z->avail_out;
    int ret = inflate(z.get(), Z_NO_FLUSH);
    produced += avail_out_before - z->avail_out;
    reader.Skip(avail_in_before - z->avail_in);
    if (input_marks && produced % kInputMarkBytes == 0 && produced / kInputMarkBytes == input_marks->size()) {
      input_marks->push_back(reader.position());
    }
    if (ret == Z_BUF_ERROR && avail_in_before == z->avail_in && avail_out_before == z->avail_out) {
      return corrupt(reader.position(), "inflate made no progress");
    }
    if (ret == Z_STREAM_END) {
      // Raw inflate stops before the member's 8-byte trailer; gzip mode reads it.
      if (raw) reader.Skip(8);
      raw = false;
      OCIFS_RETURN_IF_ERROR(z.Init(31));
    } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
      return corrupt(reader.position(), z.Message("inflate failed"));
    }
  }
  out.resize(produced);
  if (input_marks && produced % kInputMarkBytes != 0) input_marks->push_back(reader.position());
  return out;
}

Result<std::vector<uint8_t>> InflateGzipMembers(std::span<const uint8_t> in, uint64_t max_out,
                                                const std::string& what) {
  std::vector<uint8_t> out;
  ZInflateStream strm;
  size_t pos = 0;
  while (pos < in.size()) {  // one gzip member per turn
    OCIFS_RETURN_IF_ERROR(strm.Init(31));
    strm->next_in = const_cast<Bytef*>(in.data() + pos);
    strm->avail_in = static_cast<uInt>(std::min<size_t>(in.size() - pos, 1u << 30));
    int ret = Z_OK;
    while (ret != Z_STREAM_END) {
      if (out.size() == out.capacity()) out.reserve(std::max<size_t>(64 << 10, out.size() * 2));
      const size_t before = out.size();
      const size_t room = out.capacity() - before;
      out.resize(out.capacity());
      strm->next_out = out.data() + before;
      strm->avail_out = static_cast<uInt>(std::min<size_t>(room, 1u << 30));
      ret = inflate(strm.get(), Z_NO_FLUSH);
      out.resize(before + (std::min<size_t>(room, 1u << 30) - strm->avail_out));
      if (out.size() > max_out) {
        return Corrupt(what + ": decodes to more than " + std::to_string(max_out) + " bytes");
      }
      if (ret == Z_BUF_ERROR && strm->avail_in == 0) return Corrupt(what + ": truncated gzip member");
      if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
        return Corrupt(what + ": " + strm.Message("inflate failed"));
      }
    }
    const size_t used = static_cast<size_t>(strm->next_in - (in.data() + pos));
    if (used == 0) return Corrupt(what + ": empty gzip member");
    pos += used;
  }
  return out;
}

}  // namespace ocifs
