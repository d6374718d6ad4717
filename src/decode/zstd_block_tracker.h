// ZstdBlockTracker: follows the entropy state of a zstd frame block by block
// without decoding literals (RFC 8878 3.1.1): the Huffman tree description
// in force, the mode and distribution of each sequence table, and the three
// repeat offsets, which need the sequences bitstream decoded. A block's
// decoded size is its literals size plus its match lengths; each match is
// reported with its output position so a caller knows which earlier bytes a
// stretch of output refers to (a checkpoint's dictionary content).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "decode/zstd_entropy.h"
#include "ocifs/status.h"

namespace ocifs {

// One sequence table as the next block with mode "repeat" would use it.
struct ZstdTableState {
  enum class Mode { kNone, kPredefined, kRle, kFse };
  Mode mode = Mode::kNone;
  uint8_t rle_symbol = 0;
  std::vector<uint8_t> description;  // kFse: the block's exact FSE table description
  ZstdFseTable table;                // the decoding table (any mode but kNone)
};

// The state a block depends on besides earlier output. Value type.
struct ZstdEntropyState {
  std::vector<uint8_t> huffman;  // exact Huffman tree description; empty: none yet
  std::array<ZstdTableState, 3> tables;  // indexed by ZstdSeqTable
  std::array<uint32_t, 3> reps = {1, 4, 8};
};

// Thread safety: none (one sequential pass). Units: bytes of decoded output.
class ZstdBlockTracker {
 public:
  struct Match {
    uint64_t pos;     // output position of the match's first byte
    uint64_t offset;  // bytes back from pos
    uint64_t length;
  };
  using OnMatch = std::function<void(const Match&)>;

  // A new frame starts: state back to its initial values.
  void ResetFrame() { state_ = ZstdEntropyState{}; MarkReps(); }
  // Starts counting which of the current repeat offsets later matches use.
  void MarkReps() { origin_ = {0, 1, 2}; used_reps_ = 0; }
  // Bit k set: the repeat offset k current at the last MarkReps (or its
  // value minus one) was used as a match offset since.
  uint32_t used_reps() const { return used_reps_; }

  // The content of a compressed block (after its 3-byte header) whose output
  // starts at `out_pos`. Updates the state, calls on_match (if set) for each
  // match in order, and returns the block's decoded size. kCorrupt names
  // what is malformed.
  [[nodiscard]] Result<uint64_t> CompressedBlock(std::span<const uint8_t> content, uint64_t out_pos,
                                                 const OnMatch& on_match);

  const ZstdEntropyState& state() const { return state_; }
  // What the last compressed block took from the blocks before it: treeless
  // literals (the Huffman table), a sequence table in "repeat" mode.
  bool last_reused_huffman() const { return reused_huffman_; }
  bool last_reused_table() const { return reused_table_; }

 private:
  [[nodiscard]] Status ReadTable(ZstdSeqTable t, uint32_t mode, std::span<const uint8_t> in, size_t* pos);
  [[nodiscard]] Result<uint64_t> DecodeSequences(std::span<const uint8_t> bits, uint32_t nb_seq, uint64_t pos,
                                                 uint64_t literals, const OnMatch& on_match);

  ZstdEntropyState state_;
  std::array<uint8_t, 3> origin_ = {0, 1, 2};  // per rep slot: the marked slot it came from, 3 = newer
  uint32_t used_reps_ = 0;
  bool reused_huffman_ = false;
  bool reused_table_ = false;
};

}  // namespace ocifs
