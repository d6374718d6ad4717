#define ZSTD_STATIC_LINKING_ONLY
#include "decode/zstd_checkpoint_dict.h"

#include <algorithm>
#include <string>

#include "base/little_endian.h"
#include "decode/zstd_util.h"

namespace ocifs {
namespace {

std::vector<uint8_t> TableDescription(const ZstdTableState& t, ZstdSeqTable which) {
  switch (t.mode) {
    case ZstdTableState::Mode::kFse:
      return t.description;
    case ZstdTableState::Mode::kRle: {
      // One symbol with the whole (smallest) table: not read like an RLE
      // table by a following "repeat" block; the build's check drops such a
      // checkpoint.
      ZstdNormCounts nc;
      nc.accuracy_log = 5;
      nc.counts.assign(t.rle_symbol + 1u, 0);
      nc.counts[t.rle_symbol] = 32;
      return WriteZstdNormCounts(nc);
    }
    default:
      return WriteZstdNormCounts(ZstdPredefined(which));
  }
}

}  // namespace

std::vector<uint8_t> MakeZstdCheckpointDict(const ZstdEntropyState& state, const std::array<uint32_t, 3>& reps,
                                            size_t content_size) {
  std::vector<uint8_t> d;
  AppendLe<uint32_t>(d, 0xEC30A437);  // dictionary magic
  AppendLe<uint32_t>(d, 0x4F434946);  // dictionary ID: never written into a frame, never checked
  if (state.huffman.empty()) {
    d.insert(d.end(), {0x81, 0x10});  // any valid tree: no block uses it before defining its own
  } else {
    d.insert(d.end(), state.huffman.begin(), state.huffman.end());
  }
  for (ZstdSeqTable t : {ZstdSeqTable::kOffset, ZstdSeqTable::kMatchLength, ZstdSeqTable::kLiteralLength}) {
    std::vector<uint8_t> desc = TableDescription(state.tables[static_cast<size_t>(t)], t);
    d.insert(d.end(), desc.begin(), desc.end());
  }
  for (uint32_t r : reps) AppendLe<uint32_t>(d, r);
  d.resize(d.size() + content_size);
  return d;
}

Result<ZstdDDictPtr> LoadZstdCheckpointDict(std::span<const uint8_t> dict, bool by_ref) {
  ZstdDDictPtr d(ZSTD_createDDict_advanced(dict.data(), dict.size(), by_ref ? ZSTD_dlm_byRef : ZSTD_dlm_byCopy,
                                           ZSTD_dct_fullDict, ZSTD_defaultCMem));
  if (!d) return Corrupt("zstd checkpoint dictionary rejected by libzstd");
  return d;
}

Status DecodeZstdBlocks(const ZSTD_DDict* ddict, uint32_t window_log, const ByteSource& blob, uint64_t in,
                        uint64_t in_end, uint64_t skip, std::span<uint8_t> out) {
  const uint64_t total = skip + out.size();
  if (total == 0) return Status::Ok();
  // A frame header: no checksum or dictionary ID, the window, the content
  // size (which bounds the decoder's buffer). The original blocks follow; the
  // decode stops once it has `total` bytes, whether a last block came or not.
  std::vector<uint8_t> header = {0x28, 0xB5, 0x2F, 0xFD, 0xC0, static_cast<uint8_t>((window_log - 10) << 3)};
  for (int i = 0; i < 8; ++i) header.push_back(static_cast<uint8_t>(total >> (8 * i)));
  ZstdDCtxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Internal("ZSTD_createDCtx failed");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_MAX);
  if (ddict) {
    const size_t r = ZSTD_DCtx_refDDict(dctx.get(), ddict);
    if (ZSTD_isError(r)) return Internal(std::string("ZSTD_DCtx_refDDict: ") + ZSTD_getErrorName(r));
  }
  std::vector<uint8_t> chunk(static_cast<size_t>(std::min<uint64_t>(total, 1 << 20)));
  uint64_t produced = 0;
  // Feeds `piece` until it is used up or the output is complete.
  auto feed = [&](std::span<const uint8_t> piece) -> Status {
    ZSTD_inBuffer ib{piece.data(), piece.size(), 0};
    while (produced < total) {
      ZSTD_outBuffer ob{chunk.data(), static_cast<size_t>(std::min<uint64_t>(chunk.size(), total - produced)), 0};
      const size_t ret = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(ret)) return Corrupt(std::string("zstd blocks from a checkpoint: ") + ZSTD_getErrorName(ret));
      const uint64_t from = std::max(produced, skip), to = produced + ob.pos;
      if (to > from) {
        std::copy(chunk.begin() + static_cast<ptrdiff_t>(from - produced),
                  chunk.begin() + static_cast<ptrdiff_t>(to - produced),
                  out.begin() + static_cast<ptrdiff_t>(from - skip));
      }
      produced = to;
      if (ret == 0 && produced < total) return Corrupt("zstd blocks from a checkpoint end early");
      if (ib.pos == ib.size && ob.pos < ob.size) break;  // wants more input
    }
    return Status::Ok();
  };
  OCIFS_RETURN_IF_ERROR(feed(header));
  std::vector<uint8_t> buf;
  for (uint64_t at = in; produced < total; at += buf.size()) {
    if (at >= in_end) {
      return Corrupt("zstd blocks from a checkpoint decode to " + std::to_string(produced) + " bytes, expected " +
                     std::to_string(total));
    }
    buf.resize(static_cast<size_t>(std::min<uint64_t>(in_end - at, 4 << 20)));
    OCIFS_RETURN_IF_ERROR(ReadExactly(blob, at, buf));
    OCIFS_RETURN_IF_ERROR(feed(buf));
  }
  return Status::Ok();
}

}  // namespace ocifs
