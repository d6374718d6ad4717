// RawZstdData: a single zstd frame whose blocks alternate between raw
// (incompressible stretches, as a qcow2's compressed clusters) and
// compressed (text), with its checkpoint index and raw span table: for tests
// of RawSpanTable, RawSpanSource and the profile fit over them.
#pragma once

#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "base/memory_source.h"
#include "decode/zstd_checkpoint_builder.h"
#include "testing/zstd_test_data.h"

namespace ocifs::testing {

struct RawZstdData {
  std::vector<uint8_t> data;
  std::shared_ptr<MemorySource> blob;
  ZstdCheckpointIndex index;
  RawSpanTable raw;

  // `pieces` stretches of `random` random bytes, each followed by `text` bytes of text.
  explicit RawZstdData(size_t pieces = 8, size_t random = 300 << 10, size_t text = 100 << 10, uint32_t seed = 5) {
    std::mt19937 rng(seed);
    for (size_t i = 0; i < pieces; ++i) {
      for (size_t k = 0; k < random; ++k) data.push_back(static_cast<uint8_t>(rng()));
      const std::vector<uint8_t> t = MakeZstdTestData(ZstdDataKind::kText, text, seed + static_cast<uint32_t>(i));
      data.insert(data.end(), t.begin(), t.end());
    }
    blob = std::make_shared<MemorySource>(CompressZstdFrame(data, {.level = 3, .checksum = true}), "blob");
    ZstdCheckpointOptions o;
    o.spacing = 256 << 10;
    auto built = BuildZstdCheckpoints(*blob, o, nullptr, &raw);
    REQUIRE(built.ok());
    index = std::move(built).value();
  }
};

}  // namespace ocifs::testing
