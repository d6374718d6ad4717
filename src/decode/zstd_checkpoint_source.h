// ZstdCheckpointSource: a zstd blob (typically one frame, which libzstd can
// only stream) read at random through a checkpoint index built beforehand
// (BuildZstdCheckpointIndex, docs/zstd-checkpoint-format.md). A read decodes
// only the segments it overlaps, each from its checkpoint (a dictionary that
// restores libzstd's state there), and fetches only their compressed bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>

#include "decode/block_checksums.h"
#include "decode/segment_cache.h"
#include "decode/zstd_checkpoint_dict.h"
#include "decode/zstd_checkpoint_index.h"
#include "ocifs/byte_source.h"
#include "sched/scheduler.h"

namespace ocifs {

// Every byte returned is in a 64 KiB block that matched the index's CRC-32;
// a block that does not, or a segment libzstd will not decode from its
// checkpoint, fails the read with kDataLoss (the index is wrong for this
// blob, or the blob is damaged): IndexFallbackSource then falls back.
// Thread safety: all methods safe for concurrent use. Memory: cache_bytes of
// decoded segments (about 1 MiB each at the default spacing); the index's
// table (52 bytes a checkpoint plus 4 per 64 KiB of output); the
// dictionaries: compressed in the index (version 1), or (a version 2 index
// opened lazily: its dict_blob) read from the blob when a read first decodes
// from their checkpoint, CRC-checked and decompressed; in both cases the
// last kDictsKept digested dictionaries are kept (their decompressed bytes,
// at most 4 x kMaxDictSize (48 MiB) = 192 MiB in the worst case, typically
// a few hundred KiB each).
// Ownership: shares `compressed`.
class ZstdCheckpointSource final : public ByteSource {
 public:
  // `index` from ZstdCheckpointIndex::Parse; its blob size must be
  // compressed->size(). scheduler: lends the decode pool; null: Scheduler::Shared().
  ZstdCheckpointSource(ByteSourcePtr compressed, ZstdCheckpointIndex index, uint64_t cache_bytes,
                       std::shared_ptr<Scheduler> scheduler = nullptr);

  // Checks that `index` describes a blob of compressed->size() bytes
  // (kCorrupt otherwise).
  [[nodiscard]] static Result<std::shared_ptr<ZstdCheckpointSource>> Open(
      ByteSourcePtr compressed, ZstdCheckpointIndex index, uint64_t cache_bytes,
      std::shared_ptr<Scheduler> scheduler = nullptr);
  // The same, parsing `index_bytes` (version 1) first.
  [[nodiscard]] static Result<std::shared_ptr<ZstdCheckpointSource>> Open(
      ByteSourcePtr compressed, std::span<const uint8_t> index_bytes, uint64_t cache_bytes,
      std::shared_ptr<Scheduler> scheduler = nullptr);

  static constexpr size_t kDictsKept = 4;  // the LRU of digested dictionaries

  uint64_t size() const override { return index_.decoded_size; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override;
  // Forwards the compressed range the segments of [offset, offset + length) need.
  void Prefetch(uint64_t offset, uint64_t length) const override;
  std::string Describe() const override { return "zstd(" + compressed_->Describe() + ")"; }
  size_t checkpoint_count() const { return index_.checkpoints.size(); }
  const ZstdCheckpointIndex& index() const { return index_; }

  // Reports, for every read from now on, the segments it decoded
  // (`record(offset, length)`, concurrently): each segment's own blocks,
  // within the units wholly inside them (NeededWithinSpan), not from its
  // restart checkpoint, so a profile fitted to this index names each segment
  // a read needed and no neighbour. Calls record(0, 0) now (the reports
  // start: docs/profile-format.md). Before any read; once.
  // `unit`: see NeededWithinSpan (zstd_frame_source.h; 0: none).
  void RecordNeeded(std::function<void(uint64_t offset, uint64_t length)> record, uint64_t unit = 0);

 private:
  // Segment i's decoded bytes, its whole checksum blocks checked.
  [[nodiscard]] Result<SegmentCache::Buffer> Segment(size_t i) const;
  [[nodiscard]] Result<SegmentCache::Buffer> DecodeSegment(size_t i) const;
  [[nodiscard]] Result<std::shared_ptr<const ZSTD_DDict>> DictOf(size_t i) const;
  // [first, last] segments holding [from, to); from < to <= size().
  std::pair<size_t, size_t> Segments(uint64_t from, uint64_t to) const;
  // With record_: segment i was read.
  void ReportNeeded(size_t i) const;
  Status Wrong(const std::string& why) const {
    return DataLoss("zstd checkpoint index of " + compressed_->Describe() + " is wrong: " + why);
  }

  const ByteSourcePtr compressed_;
  const ZstdCheckpointIndex index_;
  const BlockChecksums checks_;
  mutable SegmentCache cache_;
  const std::shared_ptr<Scheduler> scheduler_;
  mutable std::mutex dict_mu_;  // guards dicts_ (a leaf lock)
  mutable std::list<std::pair<size_t, std::shared_ptr<const ZSTD_DDict>>> dicts_;  // front: most recent
  std::function<void(uint64_t, uint64_t)> record_;  // set before reads (RecordNeeded)
  uint64_t record_unit_ = 0;
};

}  // namespace ocifs
