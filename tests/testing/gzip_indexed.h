// The index GzipIndexer builds over a gzip blob, for tests of what is done
// with an index (sparse windows, dense checkpoints).
#pragma once

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>

#include "decode/gzip_index.h"
#include "decode/gzip_indexer.h"
#include "ocifs/byte_source.h"

namespace ocifs::testing {

// `blob` (gzip of `decompressed` bytes) indexed every `spacing` bytes of
// output, windows in memory; fails the test if the indexer does.
inline GzipIndex IndexedGzip(const ByteSource& blob, uint64_t decompressed, uint64_t spacing) {
  GzipIndex index;
  index.compressed_size = blob.size();
  index.decompressed_size = decompressed;
  index.spacing = spacing;
  GzipIndexer indexer(blob, "test layer", spacing);
  std::atomic<bool> cancel{false};
  GzipIndexer::Callbacks callbacks;
  callbacks.on_checkpoint = [&](GzipCheckpoint cp) { index.checkpoints.push_back(std::move(cp)); };
  callbacks.on_output = [](uint64_t, std::span<const uint8_t>) {};
  REQUIRE(indexer.Run(callbacks, cancel).ok());
  return index;
}

}  // namespace ocifs::testing
