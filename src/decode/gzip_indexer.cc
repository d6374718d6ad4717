#include "decode/gzip_indexer.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "decode/gzip_inflate.h"
#include "decode/sequential_reader.h"

namespace ocifs {
namespace {
constexpr size_t kWin = GzipCheckpoint::kWindowSize;
constexpr size_t kOutChunk = 256u << 10;
}  // namespace

Result<uint64_t> GzipIndexer::Run(const Callbacks& cb, const std::atomic<bool>& cancel) {
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return Corrupt("gzip data of " + layer_ + " corrupt at compressed offset " + std::to_string(at) + ": " + why);
  };
  SequentialReader reader(compressed_, 0, SequentialReader::kDefaultPiece, read_ahead_);
  // The reader's counters, whatever way Run returns.
  struct Count {
    const SequentialReader& r;
    Stats& s;
    ~Count() { s = Stats{r.bytes_read(), r.read_time()}; }
  } count{reader, stats_};
  ZInflateStream z;
  OCIFS_RETURN_IF_ERROR(z.Init(31));
  cb.on_checkpoint(GzipCheckpoint{.out = 0, .member_start = true});
  uint64_t out_total = 0;
  uint64_t last_cp = 0;
  GzipTargetPlacer placer(targets_, target_limits_);
  placer.Recorded(0, 0);
  // Records a checkpoint (regular, or placed for a target).
  auto record = [&](GzipCheckpoint cp) {
    last_cp = std::max(last_cp, cp.out);
    placer.Recorded(cp.out, cp.in);
    cb.on_checkpoint(std::move(cp));
  };
  // A restart point the placer may keep: first the checkpoints it places, if any.
  auto restart_point = [&](const GzipCheckpoint& at, std::span<const uint8_t> window) {
    if (!placer.active()) return;
    for (GzipCheckpoint& placed : placer.Restart(at, window)) record(std::move(placed));
  };
  restart_point(GzipCheckpoint{.out = 0, .member_start = true}, {});
  // buf[0, pos) is recent output; the window of a checkpoint is its last 32 KiB.
  std::vector<uint8_t> buf(kWin + kOutChunk);
  size_t pos = 0;
  bool member_has_input = false;  // bytes of the current member were consumed
  for (;;) {
    if (cancel.load(std::memory_order_relaxed)) return Cancelled("gzip pass over " + layer_ + " cancelled");
    OCIFS_ASSIGN_OR_RETURN(auto in, reader.Next());
    if (in.empty()) {
      if (!member_has_input && out_total + reader.position() > 0) break;  // clean end after a member
      return corrupt(reader.position(), "unexpected end of data (truncated)");
    }
    if (pos == buf.size()) {
      placer.Preserve();  // the windows of its recent restart points may be in the bytes dropped here
      std::memmove(buf.data(), buf.data() + pos - kWin, kWin);
      pos = kWin;
    }
    z->next_in = const_cast<Bytef*>(in.data());
    z->avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
    z->next_out = buf.data() + pos;
    z->avail_out = static_cast<uInt>(buf.size() - pos);
    uInt in_before = z->avail_in, out_before = z->avail_out;
    int ret = inflate(z.get(), Z_BLOCK);
    size_t produced = out_before - z->avail_out;
    size_t consumed = in_before - z->avail_in;
    reader.Skip(consumed);
    if (consumed > 0) member_has_input = true;
    if (produced > 0) cb.on_output(out_total, std::span<const uint8_t>(buf.data() + pos, produced));
    out_total += produced;
    pos += produced;
    if (ret == Z_STREAM_END) {
      // CRC-32 and ISIZE of the member matched (gzip mode checks them). Another
      // member may follow; a member start needs no window.
      member_has_input = false;
      OCIFS_RETURN_IF_ERROR(z.Init(31));
      OCIFS_ASSIGN_OR_RETURN(auto more, reader.Peek(1));
      if (more.empty()) continue;
      const GzipCheckpoint member{.out = out_total, .member_start = true, .in = reader.position()};
      restart_point(member, {});
      if (out_total - last_cp >= spacing_) record(member);
      continue;
    }
    if (ret != Z_OK && ret != Z_BUF_ERROR) return corrupt(reader.position(), z.Message("inflate failed"));
    if (ret == Z_BUF_ERROR && consumed == 0 && produced == 0) {
      return corrupt(reader.position(), "inflate made no progress");
    }
    // At a block boundary that is not after the last block: a checkpoint here
    // needs the unused bits of the last byte and the 32 KiB window.
    if (!(z->data_type & 128) || (z->data_type & 64)) continue;
    const size_t wsize = std::min<size_t>(pos, kWin);
    const std::span<const uint8_t> window(buf.data() + pos - wsize, wsize);
    GzipCheckpoint cp{.out = out_total, .in = reader.position(), .bits = static_cast<uint8_t>(z->data_type & 7)};
    restart_point(cp, window);
    if (out_total - last_cp >= spacing_) {
      cp.window_size = static_cast<uint32_t>(wsize);
      cp.zwindow = CompressWindow(window);
      if (cp.zwindow.empty() && wsize > 0) return Internal("compressing a gzip window failed");
      record(std::move(cp));
    }
  }
  // Targets past the last restart point: the checkpoint before them.
  for (GzipCheckpoint& placed : placer.Finish()) record(std::move(placed));
  return out_total;
}

}  // namespace ocifs
