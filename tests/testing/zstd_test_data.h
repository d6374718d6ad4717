// Test data for the zstd checkpoint tests: kinds of bytes (random, text-like,
// zeros, a mix that repeats far back) and single zstd frames of them made
// with libzstd the ways users' tools make them.
#pragma once

#include <zstd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "testing/layer_test_data.h"

namespace ocifs::testing {

enum class ZstdDataKind { kRandom, kText, kZeros, kFarRepeats };

inline std::vector<uint8_t> MakeZstdTestData(ZstdDataKind kind, size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  switch (kind) {
    case ZstdDataKind::kRandom: {
      std::vector<uint8_t> d(size);
      for (auto& b : d) b = static_cast<uint8_t>(rng());
      return d;
    }
    case ZstdDataKind::kText:
      return MakeTextData(size, seed);
    case ZstdDataKind::kZeros:
      return std::vector<uint8_t>(size, 0);
    case ZstdDataKind::kFarRepeats: {
      // Layer-like bytes, then pieces copied from far back (up to the whole
      // data so far), lightly edited so matches are long but not endless.
      std::vector<uint8_t> d = MakeLayerData(size / 3, seed);
      while (d.size() < size) {
        const size_t len = std::min<size_t>(size - d.size(), 2000 + rng() % 60000);
        const size_t from = rng() % (d.size() - std::min(d.size(), len));
        for (size_t i = 0; i < len; ++i) d.push_back(rng() % 500 == 0 ? static_cast<uint8_t>(rng()) : d[from + i]);
      }
      return d;
    }
  }
  return {};
}

struct ZstdTestOptions {
  int level = 3;
  bool content_size = true;  // false: streaming without a pledged size
  bool checksum = false;
  int window_log = 0;        // 0: the level's
  bool long_distance = false;
};

// One frame of `data`.
inline std::vector<uint8_t> CompressZstdFrame(std::span<const uint8_t> data, const ZstdTestOptions& o) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, o.level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, o.checksum ? 1 : 0);
  if (o.window_log) ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, o.window_log);
  if (o.long_distance) ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1);
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()) + 64);
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  if (o.content_size) {
    REQUIRE(!ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx, data.size())));
  } else {
    // Streaming in pieces without a pledged size leaves the content size out.
    while (in.pos < in.size) {
      ZSTD_inBuffer piece{data.data(), std::min(in.size, in.pos + 100000), in.pos};
      REQUIRE(!ZSTD_isError(ZSTD_compressStream2(cctx, &ob, &piece, ZSTD_e_continue)));
      in.pos = piece.pos;
    }
  }
  size_t r;
  do {
    r = ZSTD_compressStream2(cctx, &ob, &in, ZSTD_e_end);
    REQUIRE(!ZSTD_isError(r));
  } while (r != 0);
  ZSTD_freeCCtx(cctx);
  out.resize(ob.pos);
  return out;
}

}  // namespace ocifs::testing
