// The entropy pieces of zstd (RFC 8878) that a checkpoint needs without
// libzstd's private headers: FSE normalized counts in their wire format
// (read and write), FSE decoding tables, the predefined distributions and the
// literal/match length codes. Used by ZstdBlockTracker to follow a frame's
// sequences and by ZstdCheckpointDict to write a dictionary's tables.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ocifs/status.h"

namespace ocifs {

// The three sequence symbol kinds, in the order of a block's modes byte.
enum class ZstdSeqTable { kLiteralLength = 0, kOffset = 1, kMatchLength = 2 };

// A normalized distribution: counts[s] for symbols 0..counts.size()-1
// (-1 = "less than one"), summing (with -1 as 1) to 1 << accuracy_log.
struct ZstdNormCounts {
  uint32_t accuracy_log = 0;
  std::vector<int16_t> counts;
};

// Limits of the format: largest symbol and accuracy log per table.
uint32_t ZstdMaxSymbol(ZstdSeqTable t);
uint32_t ZstdMaxAccuracyLog(ZstdSeqTable t);
// The predefined distribution of table t (RFC 8878 3.1.1.3.2.2).
const ZstdNormCounts& ZstdPredefined(ZstdSeqTable t);

// Parses an FSE table description at the start of `in` (FSE_readNCount).
// Sets *consumed to its length in bytes. kCorrupt if malformed or beyond t's limits.
[[nodiscard]] Result<ZstdNormCounts> ReadZstdNormCounts(std::span<const uint8_t> in, ZstdSeqTable t,
                                                        size_t* consumed);
// The FSE table description of `counts` (FSE_writeNCount); counts must be valid.
std::vector<uint8_t> WriteZstdNormCounts(const ZstdNormCounts& counts);

// An FSE decoding table (RFC 8878 4.1.1). An RLE table has accuracy log 0.
// Thread safety: immutable after construction.
struct ZstdFseTable {
  struct Cell {
    uint16_t symbol = 0;
    uint8_t nb_bits = 0;
    uint16_t base = 0;  // next state = base + read(nb_bits)
  };
  uint32_t accuracy_log = 0;
  std::vector<Cell> cells;

  static ZstdFseTable Build(const ZstdNormCounts& counts);
  static ZstdFseTable Rle(uint8_t symbol);
};

// Base value and extra bits of a literal length code (0..35) and a match
// length code (0..52).
struct ZstdCodeValue {
  uint32_t base;
  uint8_t bits;
};
ZstdCodeValue ZstdLiteralLengthCode(uint32_t code);
ZstdCodeValue ZstdMatchLengthCode(uint32_t code);

}  // namespace ocifs
