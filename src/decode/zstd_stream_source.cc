#include "decode/zstd_stream_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "decode/sequential_reader.h"
#include "decode/zstd_util.h"

namespace ocifs {

ZstdStreamSource::ZstdStreamSource(ByteSourcePtr compressed, std::shared_ptr<DecodedChunkStore> store,
                                   uint64_t known_size, uint64_t cache_bytes, std::shared_ptr<Scheduler> scheduler,
                                   uint64_t read_ahead)
    : compressed_(std::move(compressed)),
      store_(std::move(store)),
      chunk_size_(std::max<uint32_t>(store_->chunk_size(), 1)),
      read_ahead_(read_ahead),
      size_(known_size),
      cache_(cache_bytes, static_cast<size_t>(std::max<uint64_t>(2, cache_bytes / chunk_size_))),
      progress_("zstd pass over zstd(" + compressed_->Describe() + ")"),
      pass_(std::move(scheduler), "zstd pass of " + compressed_->Describe(), [this] { RunPass(); }) {
  progress_.Follow(pass_);
}

ZstdStreamSource::~ZstdStreamSource() = default;

Result<uint64_t> ZstdStreamSource::Decode(uint64_t stop_after, const ChunkFn& on_chunk, uint64_t ahead) const {
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return Corrupt("zstd data of " + compressed_->Describe() + " corrupt at compressed offset " +
                   std::to_string(at) + ": " + why);
  };
  ZstdDCtxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Internal("ZSTD_createDCtx failed");
  SequentialReader reader(*compressed_, 0, SequentialReader::kDefaultPiece, ahead);
  const auto started = std::chrono::steady_clock::now();
  // Whether the pass waited for the network or decoded (debug log), whatever way it returns.
  struct Log {
    const SequentialReader& r;
    std::chrono::steady_clock::time_point started;
    std::string name;
    ~Log() { LogStreamPass(name, r.bytes_read(), r.read_time(), started); }
  } log{reader, started, Describe()};
  std::vector<uint8_t> chunk(chunk_size_);
  size_t fill = 0;
  uint64_t index = 0, total = 0;
  size_t last_ret = 1;  // 0 = at a frame boundary; nothing decoded yet counts as truncated
  for (;;) {
    if (pass_.cancelled().load(std::memory_order_relaxed)) return Cancelled("zstd pass over " + Describe() + " cancelled");
    OCIFS_ASSIGN_OR_RETURN(auto in, reader.Next());
    if (in.empty()) break;
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    for (;;) {
      ZSTD_outBuffer ob{chunk.data(), chunk.size(), fill};
      size_t in_before = ib.pos;
      size_t r = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(r)) return corrupt(reader.position() + ib.pos, ZSTD_getErrorName(r));
      bool progressed = ib.pos != in_before || ob.pos != fill;
      if (progressed) last_ret = r;  // a call without progress after a frame's end returns a header hint
      total += ob.pos - fill;
      fill = ob.pos;
      bool full = fill == chunk.size();
      if (full) {
        on_chunk(index, chunk);
        if (index++ >= stop_after) return total;
        fill = 0;
      }
      if (!full && (ib.pos == ib.size || !progressed)) break;
    }
    if (ib.pos == 0) return corrupt(reader.position(), "decompression made no progress");
    reader.Skip(ib.pos);
  }
  if (last_ret != 0) return corrupt(reader.position(), "unexpected end of data (truncated)");
  if (fill > 0) on_chunk(index, std::span<const uint8_t>(chunk.data(), fill));
  return total;
}

void ZstdStreamSource::RunPass() const {
  bool warned = false;
  ZeroRunTracker zero_runs(zeros_);
  Result<uint64_t> result = Decode(UINT64_MAX, [&](uint64_t index, std::span<const uint8_t> data) {
    zero_runs.Feed(index * chunk_size_, data);  // before the frontier moves: readers then find them known
    Status s = store_->Put(index, data);
    if (!s.ok() && !warned) {
      spdlog::warn("decoded chunk store refused chunk {} of {}: {}", index, Describe(), s.ToString());
      warned = true;
    }
    cache_.Put(index, std::make_shared<const std::vector<uint8_t>>(data.begin(), data.end()));
    if (data.size() < chunk_size_) return;  // the short last chunk counts once the pass is complete
    progress_.Advance((index + 1) * chunk_size_);
  }, read_ahead_);
  const uint64_t known = size_.load();
  if (!result.ok()) {
    if (result.status().code() != Code::kCancelled) {
      spdlog::error("zstd pass over {} failed: {}", Describe(), result.status().ToString());
    }
    progress_.Fail(result.status());
  } else if (known != kUnknownSize && known != *result) {
    progress_.Fail(Corrupt("zstd data of " + compressed_->Describe() + " decompressed to " + std::to_string(*result) +
                           " bytes, its frame header says " + std::to_string(known)));
  } else {
    zero_runs.Finish(*result);
    size_.store(*result, std::memory_order_release);
    progress_.Complete(*result);
  }
  progress_.Finish();
}

Result<SegmentCache::Buffer> ZstdStreamSource::Restart(uint64_t index, size_t length, uint64_t last_index) const {
  std::lock_guard restart(restart_mu_);
  auto data = std::make_shared<std::vector<uint8_t>>(length);
  OCIFS_ASSIGN_OR_RETURN(bool found, store_->Get(index, *data));  // another restart may have stored it
  if (found) return SegmentCache::Buffer(std::move(data));
  restarts_.fetch_add(1);
  spdlog::debug("decoded chunk {} of {} missing from the store: decompressing again from the start", index,
                Describe());
  SegmentCache::Buffer wanted;
  OCIFS_RETURN_IF_ERROR(Decode(last_index, [&](uint64_t i, std::span<const uint8_t> bytes) {
                          if (i < index) return;
                          (void)store_->Put(i, bytes);  // best effort: the bytes are served from here
                          auto buffer = std::make_shared<const std::vector<uint8_t>>(bytes.begin(), bytes.end());
                          if (i == index) wanted = buffer;
                          else cache_.Put(i, buffer);
                        }).status());
  if (!wanted || wanted->size() != length) {
    return Corrupt("zstd data of " + compressed_->Describe() + " ended before decoded chunk " +
                   std::to_string(index) + " on a second decompression");
  }
  return wanted;
}

Result<SegmentCache::Buffer> ZstdStreamSource::Chunk(uint64_t index, size_t length, uint64_t last_index) const {
  return cache_.GetOrLoad(index, length, [&]() -> Result<SegmentCache::Buffer> {
    auto data = std::make_shared<std::vector<uint8_t>>(length);
    OCIFS_ASSIGN_OR_RETURN(bool found, store_->Get(index, *data));
    if (found) return SegmentCache::Buffer(std::move(data));
    return Restart(index, length, last_index);
  });
}

Result<size_t> ZstdStreamSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (buf.empty()) return size_t{0};
  uint64_t end = offset + std::min<uint64_t>(buf.size(), UINT64_MAX - offset);
  OCIFS_ASSIGN_OR_RETURN(const PassProgress::Produced produced, progress_.WaitFor(end));
  const uint64_t limit = produced.bytes;  // the size once complete
  const bool complete = produced.complete;
  end = std::min(end, limit);
  if (offset >= end) return size_t{0};
  uint64_t first = offset / chunk_size_, last = (end - 1) / chunk_size_;
  for (uint64_t c = first; c <= last; ++c) {
    uint64_t c_start = c * chunk_size_;
    size_t length = complete ? static_cast<size_t>(std::min<uint64_t>(chunk_size_, limit - c_start)) : chunk_size_;
    uint64_t from = std::max(offset, c_start), to = std::min(end, c_start + length);
    // Behind the pass, a stored chunk gives just the bytes asked for (no whole-chunk copy and check).
    const std::span<uint8_t> part = buf.subspan(static_cast<size_t>(from - offset), static_cast<size_t>(to - from));
    Result<bool> stored = store_->GetPart(c, length, static_cast<size_t>(from - c_start), part);
    if (stored.ok() && *stored) continue;
    OCIFS_ASSIGN_OR_RETURN(SegmentCache::Buffer bytes, Chunk(c, length, last));
    std::copy(bytes->begin() + static_cast<ptrdiff_t>(from - c_start),
              bytes->begin() + static_cast<ptrdiff_t>(to - c_start),
              buf.begin() + static_cast<ptrdiff_t>(from - offset));
  }
  return static_cast<size_t>(end - offset);
}

}  // namespace ocifs
