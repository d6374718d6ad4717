#include "decode/zstd_checkpoint_source.h"
#include "base/crc32.h"

#include <zstd.h>

#include <algorithm>
#include <tuple>

#include "base/worker_pool.h"
#include "decode/zstd_frame_source.h"

namespace ocifs {
ZstdCheckpointSource::ZstdCheckpointSource(ByteSourcePtr compressed, ZstdCheckpointIndex index,
                                           uint64_t cache_bytes, std::shared_ptr<Scheduler> scheduler)
    : compressed_(std::move(compressed)),
      index_(std::move(index)),
      checks_(index_.crc_block_size, index_.crcs, index_.decoded_size, compressed_->Describe()),
      cache_(cache_bytes, 8),
      scheduler_(scheduler ? std::move(scheduler) : Scheduler::Shared()) {}

Result<std::shared_ptr<ZstdCheckpointSource>> ZstdCheckpointSource::Open(ByteSourcePtr compressed,
                                                                         std::span<const uint8_t> index_bytes,
                                                                         uint64_t cache_bytes,
                                                                         std::shared_ptr<Scheduler> scheduler) {
  OCIFS_ASSIGN_OR_RETURN(ZstdCheckpointIndex index, ZstdCheckpointIndex::Parse(index_bytes));
  return Open(std::move(compressed), std::move(index), cache_bytes, std::move(scheduler));
}

Result<std::shared_ptr<ZstdCheckpointSource>> ZstdCheckpointSource::Open(ByteSourcePtr compressed,
                                                                         ZstdCheckpointIndex index,
                                                                         uint64_t cache_bytes,
                                                                         std::shared_ptr<Scheduler> scheduler) {
  if (index.blob_size != compressed->size()) {
    return Corrupt("zstd checkpoint index is for a blob of " + std::to_string(index.blob_size) + " bytes, " +
                   compressed->Describe() + " has " + std::to_string(compressed->size()));
  }
  return std::make_shared<ZstdCheckpointSource>(std::move(compressed), std::move(index), cache_bytes,
                                                std::move(scheduler));
}

Result<std::shared_ptr<const ZSTD_DDict>> ZstdCheckpointSource::DictOf(size_t i) const {
  {
    std::lock_guard<std::mutex> lock(dict_mu_);
    for (auto it = dicts_.begin(); it != dicts_.end(); ++it) {
      if (it->first != i) continue;
      dicts_.splice(dicts_.begin(), dicts_, it);
      return dicts_.front().second;
    }
  }
  // Two readers of one checkpoint may both digest it: harmless.
  const ZstdCheckpoint& c = index_.checkpoints[i];
  // The digested dictionary refers to the bytes it was made from: one owner for both.
  struct Held {
    std::vector<uint8_t> bytes;
    ZstdDDictPtr ddict;
  };
  std::vector<uint8_t> fetched;  // a lazy index's: read from its blob now
  std::span<const uint8_t> zdict = c.zdict;
  if (zdict.empty() && index_.dict_blob) {
    fetched.resize(c.zdict_length);
    // A failed fetch is the read's error (the index may be right); wrong bytes prove it wrong.
    OCIFS_RETURN_IF_ERROR(ReadExactly(*index_.dict_blob, c.zdict_offset, fetched)
                              .WithContext("the dictionary of zstd checkpoint " + std::to_string(i)));
    if (Crc32(std::span<const uint8_t>(fetched.data(), fetched.size())) != c.zdict_crc) {
      return Wrong("the dictionary of checkpoint " + std::to_string(i) + " does not match its CRC-32");
    }
    zdict = fetched;
  }
  auto held = std::make_shared<Held>();
  held->bytes.resize(c.dict_size);
  const size_t n = ZSTD_decompress(held->bytes.data(), held->bytes.size(), zdict.data(), zdict.size());
  if (ZSTD_isError(n) || n != held->bytes.size()) {
    return Wrong("the dictionary of checkpoint " + std::to_string(i) + " does not decompress to its size");
  }
  auto loaded = LoadZstdCheckpointDict(held->bytes, /*by_ref=*/true);
  if (!loaded.ok()) return Wrong("checkpoint " + std::to_string(i) + ": " + loaded.status().message());
  held->ddict = std::move(loaded).value();
  std::shared_ptr<const ZSTD_DDict> ddict(held, held->ddict.get());
  std::lock_guard<std::mutex> lock(dict_mu_);
  dicts_.emplace_front(i, ddict);
  if (dicts_.size() > kDictsKept) dicts_.pop_back();
  return ddict;
}

Result<SegmentCache::Buffer> ZstdCheckpointSource::DecodeSegment(size_t i) const {
  const auto& cps = index_.checkpoints;
  const size_t r = index_.RestartOf(i);
  const uint64_t in_to = i + 1 < cps.size() ? cps[i + 1].in : index_.blob_size;
  std::shared_ptr<const ZSTD_DDict> ddict;
  if (cps[r].kind == ZstdCheckpoint::Kind::kDictionary) {
    OCIFS_ASSIGN_OR_RETURN(ddict, DictOf(r));
  }
  auto out = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(index_.SegmentEnd(i) - cps[i].out));
  Status s = DecodeZstdBlocks(ddict.get(), index_.window_log, *compressed_, cps[r].in, in_to, cps[i].out - cps[r].out,
                              *out);
  if (s.code() == Code::kCorrupt) return Wrong("segment " + std::to_string(i) + " does not decode: " + s.message());
  OCIFS_RETURN_IF_ERROR(s);
  OCIFS_RETURN_IF_ERROR(checks_.Check(cps[i].out, *out));
  return SegmentCache::Buffer(std::move(out));
}

void ZstdCheckpointSource::RecordNeeded(std::function<void(uint64_t offset, uint64_t length)> record, uint64_t unit) {
  record_unit_ = unit;
  record_ = std::move(record);
  if (record_) record_(0, 0);
}

void ZstdCheckpointSource::ReportNeeded(size_t i) const {
  // A read decodes the segment whole: its own blocks name it (not its
  // restart's, which may belong to the segments before).
  const uint64_t own_first = index_.checkpoints[i].in, own_last = index_.SegmentInput(i).second;
  const auto [first, last] = NeededWithinSpan(own_first, own_last, own_first, own_last, record_unit_);
  if (last > first) record_(first, last - first);
}

Result<SegmentCache::Buffer> ZstdCheckpointSource::Segment(size_t i) const {
  const size_t size = static_cast<size_t>(index_.SegmentEnd(i) - index_.checkpoints[i].out);
  return cache_.GetOrLoad(i, size, [&] { return DecodeSegment(i); });
}

std::pair<size_t, size_t> ZstdCheckpointSource::Segments(uint64_t from, uint64_t to) const {
  return {index_.SegmentAt(from), index_.SegmentAt(to - 1)};
}

void ZstdCheckpointSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= size() || length == 0) return;
  const auto [first, last] = Segments(offset, offset + std::min(length, size() - offset));
  const uint64_t in_from = index_.checkpoints[index_.RestartOf(first)].in;
  const uint64_t in_to = last + 1 < index_.checkpoints.size() ? index_.checkpoints[last + 1].in : index_.blob_size;
  compressed_->Prefetch(in_from, in_to - in_from);
}

Result<size_t> ZstdCheckpointSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size() || buf.empty()) return size_t{0};
  const uint64_t end = offset + std::min<uint64_t>(buf.size(), size() - offset);
  // Edge blocks not verified yet are read whole, so every byte returned is checked.
  const auto [from, to] = checks_.Widen(offset, end);
  const auto [first, last] = Segments(from, to);
  std::vector<SegmentCache::Buffer> segments(last - first + 1);
  OCIFS_RETURN_IF_ERROR(scheduler_->decode_pool().ParallelFor(segments.size(), [&](size_t k) -> Status {
    OCIFS_ASSIGN_OR_RETURN(segments[k], Segment(first + k));
    return Status::Ok();
  }));
  std::vector<uint8_t> wide(static_cast<size_t>(to - from));
  for (size_t k = 0; k < segments.size(); ++k) {
    const uint64_t seg = index_.checkpoints[first + k].out;
    const uint64_t a = std::max(from, seg), b = std::min(to, index_.SegmentEnd(first + k));
    std::copy(segments[k]->begin() + static_cast<ptrdiff_t>(a - seg),
              segments[k]->begin() + static_cast<ptrdiff_t>(b - seg),
              wide.begin() + static_cast<ptrdiff_t>(a - from));
    if (record_) ReportNeeded(first + k);
  }
  OCIFS_RETURN_IF_ERROR(checks_.Check(from, wide));
  std::copy_n(wide.begin() + static_cast<ptrdiff_t>(offset - from), end - offset, buf.begin());
  return static_cast<size_t>(end - offset);
}

}  // namespace ocifs
