// Helpers for tests of gzip indexes that are wrong: build a layer's index
// with a first pass, then change it so that it still loads (its file
// checksum recomputed by Save) but inflates to other bytes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/memory_source.h"
#include "decode/decoder.h"
#include "decode/gzip_index.h"
#include "decode/gzip_inflate.h"
#include "decode/gzip_source.h"
#include "ocifs/byte_source.h"
#include "testing/layer_test_data.h"

namespace ocifs::testing {

// Runs a first pass over `blob` (ignoring any saved index), which saves its
// index at options.index_path, and loads that index.
inline Result<GzipIndex> BuildGzipIndex(ByteSourcePtr blob, const DecoderOptions& options) {
  OCIFS_ASSIGN_OR_RETURN(auto gz, GzipSource::Open(std::move(blob), options, GzipSource::SavedIndex::kRebuild));
  OCIFS_RETURN_IF_ERROR(gz->WaitUntilIndexed());
  return GzipIndex::Load(options.index_path);
}

// The first block (of `block_size` bytes) at or after block `from` of `data`
// that is not all zeros (so no run of zeros holds it); blocks past the end if none.
inline size_t DataBlock(std::span<const uint8_t> data, size_t block_size, size_t from) {
  for (size_t b = from; b * block_size < data.size(); ++b) {
    const auto block = data.subspan(b * block_size, std::min(block_size, data.size() - b * block_size));
    if (std::any_of(block.begin(), block.end(), [](uint8_t x) { return x != 0; })) return b;
  }
  return (data.size() + block_size - 1) / block_size;
}

// A gzip layer of `data` (a blob named `name`: `compressed`, or one zlib
// member of `data`), its index built by a first pass with checkpoints every
// `spacing` bytes, saved at `index_path` (options.index_path) and loaded back.
struct IndexedGzipLayer {
  std::vector<uint8_t> data;
  std::shared_ptr<MemorySource> blob;
  DecoderOptions options;
  GzipIndex index;

  IndexedGzipLayer(const std::string& index_path, std::vector<uint8_t> bytes, const std::string& name,
                   uint64_t spacing = 256 << 10, std::vector<uint8_t> compressed = {})
      : data(std::move(bytes)) {
    if (compressed.empty()) compressed = GzipMember(data);
    blob = std::make_shared<MemorySource>(std::move(compressed), name);
    options.checkpoint_spacing = spacing;
    options.index_path = index_path;
    auto built = BuildGzipIndex(blob, options);
    REQUIRE(built.ok());
    index = std::move(built).value();
  }
};

// Flips one byte of one checkpoint's window in `index`, chosen so that
// inflating the checkpoint's span succeeds but gives other bytes than `data`
// (the layer's true bytes): an index that is wrong without a zlib error.
// Returns the checkpoint changed, or 0 if no such byte was found.
inline size_t FlipWindowByteThatMatters(GzipIndex& index, const ByteSource& blob, std::span<const uint8_t> data) {
  for (size_t i = 1; i < index.checkpoints.size(); ++i) {
    const GzipCheckpoint& cp = index.checkpoints[i];
    if (cp.window_size == 0) continue;
    std::vector<uint8_t> window(cp.window_size);
    if (!DecompressWindow(cp, window).ok()) continue;
    const uint64_t end = i + 1 < index.checkpoints.size() ? index.checkpoints[i + 1].out : index.decompressed_size;
    const auto truth = data.subspan(cp.out, end - cp.out);
    for (size_t k = 1; k <= std::min<size_t>(64, window.size()); ++k) {
      std::vector<uint8_t> flipped = window;
      flipped[flipped.size() - k] ^= 0x20;
      GzipCheckpoint changed = cp;
      changed.window_file = nullptr;
      changed.zwindow = CompressWindow(flipped);
      auto got = InflateFromCheckpoint(blob, changed, truth.size(), 0, "tamper");
      if (got.ok() && got->size() == truth.size() && !std::equal(got->begin(), got->end(), truth.begin())) {
        index.checkpoints[i] = std::move(changed);
        return i;
      }
    }
  }
  return 0;
}

}  // namespace ocifs::testing
