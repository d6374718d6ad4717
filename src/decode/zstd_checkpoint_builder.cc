#define ZSTD_STATIC_LINKING_ONLY
#include "decode/zstd_checkpoint_builder.h"

#include <zstd.h>

#include <algorithm>
#include <bit>
#include <optional>

#include "decode/block_checksums.h"
#include "decode/zstd_block_tracker.h"
#include "decode/zstd_checkpoint_dict.h"
#include "decode/zstd_util.h"

namespace ocifs {
namespace {

constexpr uint64_t kReadSize = 4ull << 20;

// The compressed bytes the pass holds, at their offsets in the blob.
class SpanSource final : public ByteSource {
 public:
  SpanSource(std::span<const uint8_t> bytes, uint64_t base) : bytes_(bytes), base_(base) {}
  uint64_t size() const override { return base_ + bytes_.size(); }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    if (offset < base_) return Internal("zstd checkpoint build: bytes no longer held");
    if (offset >= size()) return size_t{0};
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size() - offset));
    std::copy_n(bytes_.begin() + static_cast<ptrdiff_t>(offset - base_), n, buf.begin());
    return n;
  }

 private:
  const std::span<const uint8_t> bytes_;
  const uint64_t base_;
};

// One sequential pass: the block tracker and libzstd's own streaming decoder
// side by side, block by block, so that the real output of every block is at
// hand when a checkpoint's segment ends. Thread safety: none.
class Pass {
 public:
  Pass(const ByteSource& blob, const ZstdCheckpointOptions& o, ZstdCheckpointStats* stats, bool raw_spans)
      : blob_(blob), o_(o), stats_(stats), crcs_(64 * 1024) {
    if (raw_spans) raw_.emplace();
    for (const auto& [from, to] : o.targets) {
      starts_.push_back(from);
      ends_.push_back(to);
    }
    std::sort(starts_.begin(), starts_.end());
    std::sort(ends_.begin(), ends_.end());
  }
  [[nodiscard]] Result<ZstdCheckpointIndex> Run();
  // After Run: the raw blocks (if asked for).
  [[nodiscard]] Result<RawSpanTable> RawSpans() { return raw_->Finish(blob_.size(), out_); }

 private:
  // An open checkpoint: its state and the earlier bytes its segment refers to.
  struct Open {
    uint64_t in = 0, out = 0;
    bool frame_start = false;
    ZstdEntropyState state;
    int blocks = 0;  // compressed blocks seen
    bool first_treeless = false, first_repeat = false;
    std::vector<std::pair<uint64_t, uint64_t>> refs;  // [from, to) before `out`
    uint64_t reach = 0;
  };
  [[nodiscard]] Status Ensure(uint64_t off, uint64_t n);
  std::span<const uint8_t> Compressed(uint64_t off, uint64_t n) const {
    return std::span<const uint8_t>(cbuf_).subspan(off - cbase_, n);
  }
  std::span<const uint8_t> Decoded(uint64_t from, uint64_t to) const {
    return std::span<const uint8_t>(hist_).subspan(from - hbase_, to - from);
  }
  [[nodiscard]] Status FeedReal(uint64_t off, uint64_t n);
  [[nodiscard]] Status Finish(uint64_t in_end);
  void Start(uint64_t in, bool frame_start);
  bool TargetAt(uint64_t off, uint64_t len);
  bool WithinBudget(uint64_t off) const {
    return static_cast<double>(zdict_bytes_ + last_zdict_) <=
           static_cast<double>(o_.max_dict_bytes) * static_cast<double>(off) / static_cast<double>(blob_.size());
  }
  Status CannotFollow(uint64_t off, const std::string& why) const {
    return Unsupported("zstd checkpoints cannot follow the block of " + blob_.Describe() + " at compressed offset " +
                       std::to_string(off) + " (libzstd decodes it): " + why);
  }
  Status Bad(uint64_t off, const std::string& why) const {
    return Corrupt("zstd blob " + blob_.Describe() + " at compressed offset " + std::to_string(off) + ": " + why);
  }

  const ByteSource& blob_;
  const ZstdCheckpointOptions& o_;
  ZstdCheckpointStats* stats_;
  ZstdCheckpointIndex index_;
  ZstdBlockTracker tracker_;
  BlockCrcBuilder crcs_;
  ZstdDCtxPtr real_{ZSTD_createDCtx()};
  std::vector<uint8_t> cbuf_;  // compressed [cbase_, cbase_ + size)
  uint64_t cbase_ = 0;
  std::vector<uint8_t> hist_;  // decoded [hbase_, hbase_ + size)
  uint64_t hbase_ = 0;
  uint64_t out_ = 0;          // decoded bytes so far
  uint64_t frame_out_ = 0;    // decoded offset of the current frame
  uint64_t keep_back_ = 0;    // decoded bytes kept before the open checkpoint
  uint64_t zdict_bytes_ = 0;  // compressed dictionaries so far
  uint64_t last_zdict_ = 0;   // the last one: what the next may take
  std::optional<Open> open_;
  std::optional<RawSpanTableBuilder> raw_;
  std::vector<uint64_t> starts_, ends_;
  size_t next_start_ = 0, next_end_ = 0;
};

Status Pass::Ensure(uint64_t off, uint64_t n) {
  if (off + n > blob_.size()) return Bad(off, "truncated (" + std::to_string(n) + " more bytes needed)");
  if (off + n <= cbase_ + cbuf_.size()) return Status::Ok();
  const uint64_t keep = std::min(off, open_ ? open_->in : off);
  cbuf_.erase(cbuf_.begin(), cbuf_.begin() + static_cast<ptrdiff_t>(keep - cbase_));
  cbase_ = keep;
  const uint64_t have = cbase_ + cbuf_.size();
  const uint64_t want = std::min(blob_.size(), std::max(off + n, have + kReadSize));
  const size_t old = cbuf_.size();
  cbuf_.resize(old + (want - have));
  return ReadExactly(blob_, have, std::span<uint8_t>(cbuf_).subspan(old));
}

Status Pass::FeedReal(uint64_t off, uint64_t n) {
  ZSTD_inBuffer in{cbuf_.data() + (off - cbase_), n, 0};
  for (;;) {
    const size_t old = hist_.size();
    hist_.resize(old + (256 << 10));
    ZSTD_outBuffer ob{hist_.data() + old, 256 << 10, 0};
    const size_t r = ZSTD_decompressStream(real_.get(), &ob, &in);
    hist_.resize(old + ob.pos);
    if (ZSTD_isError(r)) return Bad(off, ZSTD_getErrorName(r));
    if (in.pos == in.size && ob.pos < ob.size) return Status::Ok();
  }
}

void Pass::Start(uint64_t in, bool frame_start) {
  open_.emplace();
  open_->in = in;
  open_->out = out_;
  open_->frame_start = frame_start;
  open_->state = tracker_.state();
  tracker_.MarkReps();
  // Drop output no segment from here on may refer to (amortized).
  const uint64_t keep_from = out_ - std::min(out_ - hbase_, keep_back_);
  if (keep_from - hbase_ > hist_.size() / 2) {
    hist_.erase(hist_.begin(), hist_.begin() + static_cast<ptrdiff_t>(keep_from - hbase_));
    hbase_ = keep_from;
  }
}

Status Pass::Finish(uint64_t in_end) {
  if (!open_) return Status::Ok();
  Open c = std::move(*open_);
  open_.reset();
  if (out_ == c.out) return Status::Ok();  // an empty frame
  ZstdCheckpoint cp;
  cp.in = c.in;
  cp.out = c.out;
  cp.kind = ZstdCheckpoint::Kind::kFromFrameStart;
  std::vector<uint8_t> dict;
  ZstdDDictPtr ddict;
  bool usable = c.frame_start;
  if (!c.frame_start) {
    uint64_t len = std::max<uint64_t>(c.reach, 8);
    std::array<uint32_t, 3> reps = {1, 1, 1};
    for (int k = 0; k < 3; ++k) {
      if ((tracker_.used_reps() >> k & 1) == 0) continue;
      reps[k] = c.state.reps[k];
      len = std::max<uint64_t>(len, reps[k]);
    }
    if (len > o_.max_reach || c.reach > c.out - hbase_) {
      if (stats_) ++stats_->dropped_reach;
    } else {
      // The content's bytes that matches copy; the dictionary ends with them.
      dict = MakeZstdCheckpointDict(c.state, reps, len);
      for (const auto& [from, to] : c.refs) {
        auto src = Decoded(from, to);
        std::copy(src.begin(), src.end(), dict.end() - static_cast<ptrdiff_t>(c.out - from));
      }
      auto loaded = LoadZstdCheckpointDict(dict, /*by_ref=*/true);
      usable = loaded.ok();
      if (usable) ddict = std::move(loaded).value();
    }
  }
  if (usable) {
    std::vector<uint8_t> got(out_ - c.out);
    const SpanSource held(cbuf_, cbase_);
    Status s = DecodeZstdBlocks(ddict.get(), index_.window_log, held, c.in, in_end, 0, got);
    auto want = Decoded(c.out, out_);
    usable = s.ok() && std::equal(got.begin(), got.end(), want.begin());
    if (!usable && c.frame_start) return Internal("zstd checkpoint build: a frame start does not decode: " + s.ToString());
    if (!usable && stats_) ++stats_->dropped_verify;
  }
  if (usable && !c.frame_start) {
    cp.kind = ZstdCheckpoint::Kind::kDictionary;
    cp.dict_size = static_cast<uint32_t>(dict.size());
    cp.zdict.resize(ZSTD_compressBound(dict.size()));
    const size_t n = ZSTD_compress(cp.zdict.data(), cp.zdict.size(), dict.data(), dict.size(), o_.dict_level);
    if (ZSTD_isError(n)) return Internal(std::string("compressing a checkpoint dictionary: ") + ZSTD_getErrorName(n));
    cp.zdict.resize(n);
    if (stats_) stats_->first_treeless += c.first_treeless, stats_->first_repeat += c.first_repeat;
    zdict_bytes_ += n;
    last_zdict_ = n;
    if (stats_) stats_->dict_bytes += dict.size(), stats_->zdict_bytes += n;
  }
  if (c.frame_start) cp.kind = ZstdCheckpoint::Kind::kFrameStart;
  if (stats_ && cp.kind != ZstdCheckpoint::Kind::kFromFrameStart) ++stats_->checkpoints;
  index_.checkpoints.push_back(std::move(cp));
  return Status::Ok();
}

bool Pass::TargetAt(uint64_t off, uint64_t len) {
  bool hit = false;
  while (next_start_ < starts_.size() && starts_[next_start_] < off + len) hit = true, ++next_start_;
  while (next_end_ < ends_.size() && ends_[next_end_] <= off) hit = true, ++next_end_;
  return hit;
}

Result<ZstdCheckpointIndex> Pass::Run() {
  if (!real_) return Internal("ZSTD_createDCtx failed");
  ZSTD_DCtx_setParameter(real_.get(), ZSTD_d_windowLogMax, ZSTD_WINDOWLOG_MAX);
  const uint64_t size = blob_.size();
  index_.blob_size = size;
  index_.spacing = o_.spacing;
  uint64_t off = 0;
  while (off < size) {
    OCIFS_RETURN_IF_ERROR(Ensure(off, std::min<uint64_t>(size - off, ZSTD_FRAMEHEADERSIZE_MAX)));
    auto head = Compressed(off, std::min<uint64_t>(size - off, ZSTD_FRAMEHEADERSIZE_MAX));
    ZSTD_frameHeader fh;
    const size_t r = ZSTD_getFrameHeader(&fh, head.data(), head.size());
    if (ZSTD_isError(r) || r != 0) return Bad(off, "no zstd frame header");
    if (fh.frameType == ZSTD_skippableFrame) {
      // Skipped unread (the real decoder need not see it). headerSize is 0 here.
      const uint64_t len = ZSTD_SKIPPABLEHEADERSIZE + uint64_t{fh.frameContentSize};
      if (len > size - off) return Bad(off, "skippable frame past the end of the blob");
      off += len;
      continue;
    }
    if (fh.dictID != 0) return Unsupported("zstd frame at " + std::to_string(off) + " needs a dictionary");
    if (stats_) ++stats_->frames;
    const uint32_t wlog = std::max<uint32_t>(10, static_cast<uint32_t>(std::bit_width(std::max<uint64_t>(fh.windowSize, 1) - 1)));
    index_.window_log = std::max(index_.window_log, wlog);
    keep_back_ = std::min<uint64_t>(fh.windowSize, o_.max_reach);
    const uint64_t max_block = std::min<uint64_t>(fh.windowSize, ZSTD_BLOCKSIZE_MAX);
    OCIFS_RETURN_IF_ERROR(FeedReal(off, fh.headerSize));
    off += fh.headerSize;
    tracker_.ResetFrame();
    frame_out_ = out_;
    bool first = true, last = false;
    while (!last) {
      OCIFS_RETURN_IF_ERROR(Ensure(off, 3));
      auto h3 = Compressed(off, 3);
      const uint32_t h = h3[0] | (h3[1] << 8) | (static_cast<uint32_t>(h3[2]) << 16);
      last = (h & 1) != 0;
      const uint32_t type = (h >> 1) & 3, bsize = h >> 3;
      if (type == 3) return Bad(off, "block of reserved type");
      if (bsize > max_block) return Bad(off, "block larger than the window or 128 KiB");
      const uint64_t len = 3 + (type == 1 ? 1 : bsize);
      OCIFS_RETURN_IF_ERROR(Ensure(off, len));
      const bool target = TargetAt(off, len);
      if (first) {
        Start(off, true);
      } else if (out_ - open_->out >= o_.spacing || target) {
        // A segment is never let grow past a quarter of what an index may hold.
        if (WithinBudget(off) || out_ - open_->out >= ZstdCheckpointIndex::kMaxSegment / 4) {
          OCIFS_RETURN_IF_ERROR(Finish(off));
          Start(off, false);
        } else if (stats_) {
          ++stats_->skipped_budget;
        }
      }
      first = false;
      // libzstd decodes the block first: what it refuses is corrupt; what it
      // takes and the tracker cannot follow is a limit of ours (no index).
      OCIFS_RETURN_IF_ERROR(FeedReal(off, len));
      uint64_t decoded = bsize;
      if (type == 2) {
        Status match_error;
        Open& c = *open_;
        auto on_match = [&](const ZstdBlockTracker::Match& m) {
          if (m.offset > m.pos - frame_out_) {
            match_error = Corrupt("a match before the frame's start");
            return;
          }
          const uint64_t src = m.pos - m.offset;
          if (src >= c.out) return;
          c.refs.emplace_back(src, std::min(src + m.length, c.out));
          c.reach = std::max(c.reach, c.out - src);
        };
        auto n = tracker_.CompressedBlock(Compressed(off + 3, bsize), out_, on_match);
        if (n.ok() && !match_error.ok()) n = match_error;
        if (!n.ok()) return CannotFollow(off, n.status().message());
        decoded = *n;
        if (c.blocks++ == 0) {
          c.first_treeless = tracker_.last_reused_huffman();
          c.first_repeat = tracker_.last_reused_table();
        }
      }
      if (hbase_ + hist_.size() != out_ + decoded) {
        return CannotFollow(off, "block decodes to " + std::to_string(hbase_ + hist_.size() - out_) +
                            " bytes, its sequences say " + std::to_string(decoded));
      }
      crcs_.Feed(Decoded(out_, out_ + decoded));
      if (type == 0 && raw_) raw_->Add(off + 3, out_, Compressed(off + 3, bsize));
      out_ += decoded;
      off += len;
    }
    OCIFS_RETURN_IF_ERROR(Finish(off));
    if (fh.checksumFlag) {
      OCIFS_RETURN_IF_ERROR(Ensure(off, 4));
      OCIFS_RETURN_IF_ERROR(FeedReal(off, 4));
      off += 4;
    }
  }
  index_.decoded_size = out_;
  index_.crcs = crcs_.Finish();
  return std::move(index_);
}

}  // namespace

Result<ZstdCheckpointIndex> BuildZstdCheckpoints(const ByteSource& blob, const ZstdCheckpointOptions& options,
                                                 ZstdCheckpointStats* stats, RawSpanTable* raw_spans) {
  if (blob.size() == ByteSource::kUnknownSize) return InvalidArgument("zstd checkpoint build: blob of unknown size");
  Pass pass(blob, options, stats, raw_spans != nullptr);
  OCIFS_ASSIGN_OR_RETURN(ZstdCheckpointIndex index, pass.Run());
  if (raw_spans) {
    OCIFS_ASSIGN_OR_RETURN(*raw_spans, pass.RawSpans());
  }
  return index;
}

Result<std::string> BuildZstdCheckpointIndex(const ByteSource& blob, const ZstdCheckpointOptions& options,
                                             ZstdCheckpointStats* stats) {
  OCIFS_ASSIGN_OR_RETURN(ZstdCheckpointIndex index, BuildZstdCheckpoints(blob, options, stats));
  return index.Serialize();
}

}  // namespace ocifs
