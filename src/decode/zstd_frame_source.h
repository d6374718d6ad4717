// ZstdFrameSource: a zstd blob of independently compressed frames with known
// sizes as a random-access ByteSource; a read decompresses only the frames it
// overlaps, side by side on the scheduler's decode pool when there are several.
// A "frame" may also be one or more whole gzip members (FrameCodec::kGzip, an
// eStargz layer's chunks, docs/estargz.md).
// A frame with a CRC-32 (ZstdFrame::crc32) is checked at every decode: one
// that does not match fails the read with kDataLoss, never returning its bytes.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/byte_buffer_pool.h"
#include "decode/background_pass.h"
#include "decode/segment_cache.h"
#include "decode/zstd_frames.h"
#include "ocifs/byte_source.h"
#include "sched/scheduler.h"

namespace ocifs {

// What a zstd source reports of a read (RecordNeeded): its needed input
// [first, last), within the units of `unit` bytes wholly inside the span
// [own_first, own_last) that it decoded, if the two share any such unit (so
// the report names no unit shared with a neighbouring span); else as it is.
std::pair<uint64_t, uint64_t> NeededWithinSpan(uint64_t first, uint64_t last, uint64_t own_first, uint64_t own_last,
                                               uint64_t unit);

// How each frame's compressed bytes are decoded.
enum class FrameCodec { kZstd, kGzip };

// Thread safety: all methods safe for concurrent use. Memory: the last few
// decompressed frames (cache_bytes, at least 4 frames' worth of slots), and
// up to max(cache_bytes / 2, 10 MiB) of idle buffers kept for the next decodes.
// Ownership: shares `compressed`.
class ZstdFrameSource final : public ByteSource {
 public:
  // Vets frame `index`'s decoded bytes before any read sees them (a
  // zstd:chunked TOC's digests); its error fails the read. Called
  // concurrently from the decode pool.
  using FrameCheck = std::function<Status(size_t index, std::span<const uint8_t> decoded)>;

  // `frames` sorted, contiguous in out offsets starting at 0 (from
  // ReadZstdSeekTable or ScanZstdFrames); each in range within `compressed`.
  // scheduler: lends the decode pool; null: Scheduler::Shared().
  ZstdFrameSource(ByteSourcePtr compressed, std::vector<ZstdFrame> frames, uint64_t cache_bytes,
                  std::shared_ptr<Scheduler> scheduler = nullptr, FrameCheck check = nullptr,
                  FrameCodec codec = FrameCodec::kZstd);

  uint64_t size() const override { return size_; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Forwards the compressed range of the frames [offset, offset + length)
  // overlaps (those not in the segment cache are all it costs).
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override {
    return (codec_ == FrameCodec::kGzip ? "gzip(" : "zstd(") + compressed_->Describe() + ")";
  }
  size_t frame_count() const { return frames_.size(); }
  // Each frame's compressed bytes [first, second), in order.
  std::vector<std::pair<uint64_t, uint64_t>> FrameSpans() const;

  // Fetches the whole compressed blob front to back in the background (one
  // kFirstPass task), keeping `read_ahead` bytes of range requests in flight
  // ahead of it, as a stream layer's first pass would: a layer read without
  // an artifact comes at the link's rate, and reads behind the fill find
  // their frames' bytes in the cache. The bytes are not decoded. Once; the
  // fill stops when the source is destroyed or the scheduler stops.
  void StartFill(uint64_t read_ahead);

  // Reports, for every read from now on, the compressed bytes that made its
  // output (`record(offset, length)`, concurrently), not the whole frames it
  // decoded: a zstd frame is decoded a block at a time, noting where each
  // block's input and output start; a read's bytes came from the blocks
  // holding them. Calls record(0, 0) now (the reports start:
  // docs/profile-format.md). Before any read; once.
  // `unit`: see NeededWithinSpan (0: none).
  void RecordNeeded(std::function<void(uint64_t offset, uint64_t length)> record, uint64_t unit = 0);

 private:
  [[nodiscard]] Result<SegmentCache::Buffer> DecodeFrame(size_t index) const;
  // Where a block of a frame starts: its output offset in the frame, its
  // blob offset (its 3-byte header's), and whether it is a raw block (its
  // output is its input after the header).
  struct BlockStart {
    uint64_t out = 0, in = 0;
    bool raw = false;
  };
  // Frame f's bytes (`in`) decoded into `out` (f.out_size bytes) a block at a
  // time, each block's start appended to `blocks`, then the frame's end.
  [[nodiscard]] Status DecodeMarked(const ZstdFrame& f, std::span<const uint8_t> in, std::span<uint8_t> out,
                                    std::vector<BlockStart>& blocks) const;
  void ReportNeeded(size_t index, uint64_t from, uint64_t to) const;

  const ByteSourcePtr compressed_;
  const std::vector<ZstdFrame> frames_;
  const uint64_t size_;
  mutable SegmentCache cache_;
  // The frames' input and output buffers, recycled (cache_'s evicted ones
  // serve the next decode): half the cache's bytes idle at most.
  const std::shared_ptr<ByteBufferPool> buffers_;
  static constexpr size_t kFillPiece = 1u << 20;  // the fill's reads: a chunk at a time
  static constexpr uint64_t kMinPooledBytes = 10ull << 20;  // a 4 MiB frame's input and output, rounded up
  const std::shared_ptr<Scheduler> scheduler_;
  const FrameCheck check_;
  const FrameCodec codec_;
  std::function<void(uint64_t, uint64_t)> record_;  // set before reads (RecordNeeded)
  uint64_t record_unit_ = 0;
  // With record_: each decoded frame's blocks, by frame; a leaf lock.
  // Memory: 16 bytes per block (up to 128 KiB of output).
  mutable std::mutex blocks_mu_;
  mutable std::unordered_map<size_t, std::vector<BlockStart>> blocks_;  // guarded by blocks_mu_
  // StartFill's pass; last: cancelled and waited for first.
  std::unique_ptr<BackgroundPass> fill_;
};

}  // namespace ocifs
