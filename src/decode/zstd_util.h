// RAII for zstd decompression contexts.
#pragma once

#include <zstd.h>

#include <memory>

namespace ocifs {

struct ZstdDCtxDeleter {
  void operator()(ZSTD_DCtx* dctx) const { ZSTD_freeDCtx(dctx); }
};
// Owns one ZSTD_DCtx (null if allocation failed). Thread safety: none.
using ZstdDCtxPtr = std::unique_ptr<ZSTD_DCtx, ZstdDCtxDeleter>;

}  // namespace ocifs
