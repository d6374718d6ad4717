// GzipIndexer: the first sequential pass over a gzip layer. Inflates every
// member, verifies each member's CRC-32 and ISIZE, and records a checkpoint
// about every `spacing` bytes of output at a deflate block boundary (or a
// member start), as zlib's zran does; with targets (compressed ranges a
// workload reads), also ones around each of them (GzipTargetPlacer).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "decode/gzip_index.h"
#include "decode/gzip_target_placer.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Thread safety: one Run at a time per object; callbacks run on the caller's thread.
class GzipIndexer {
 public:
  struct Callbacks {
    // A new checkpoint, in increasing `out` order; the first is {0, member start, in 0}.
    // A checkpoint placed for a target comes once the stream passed the
    // target: its `out` may lie behind output already given to on_output.
    std::function<void(GzipCheckpoint)> on_checkpoint;
    // Decompressed bytes at `out` offset, in order, contiguous.
    std::function<void(uint64_t out, std::span<const uint8_t> data)> on_output;
  };

  // `compressed` is borrowed for the duration of Run. `layer` names it in errors.
  GzipIndexer(const ByteSource& compressed, std::string layer, uint64_t spacing)
      : compressed_(compressed), layer_(std::move(layer)), spacing_(spacing == 0 ? 1 : spacing) {}

  // Extra checkpoints around target ranges (GzipTargetPlacer::Plan's
  // points; `limits` bound them). Before Run.
  void SetTargets(std::vector<GzipTargetPlacer::Point> points, const GzipTargetPlacer::Limits& limits) {
    targets_ = std::move(points);
    target_limits_ = limits;
  }

  // How far ahead of its reads the pass keeps the compressed source hinted
  // (SequentialReader's `ahead`): several range requests stay in flight
  // while it inflates. 0: none. Before Run.
  void SetReadAhead(uint64_t bytes) { read_ahead_ = bytes; }

  // What the last Run read, and how long it waited in the source's ReadAt.
  struct Stats {
    uint64_t compressed_bytes = 0;
    std::chrono::steady_clock::duration read_time{};
  };
  const Stats& stats() const { return stats_; }

  // Inflates the whole blob. Returns the decompressed size; kCorrupt on bad or
  // truncated data ("gzip data of <layer> corrupt at compressed offset N: ..."),
  // kCancelled soon after `cancel` becomes true.
  [[nodiscard]] Result<uint64_t> Run(const Callbacks& callbacks, const std::atomic<bool>& cancel);

 private:
  const ByteSource& compressed_;
  const std::string layer_;
  const uint64_t spacing_;
  std::vector<GzipTargetPlacer::Point> targets_;
  GzipTargetPlacer::Limits target_limits_;
  uint64_t read_ahead_ = 0;
  Stats stats_;
};

}  // namespace ocifs
