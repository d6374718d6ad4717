#include "decode/gzip_block_checkpoints.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <optional>
#include <set>

#include "base/crc32.h"
#include "decode/gzip_inflate.h"
#include "decode/gzip_sparse_windows.h"
#include "decode/sequential_reader.h"

namespace ocifs {
namespace {

constexpr size_t kInsideBlockWindow = GzipCheckpoint::kWindowSize;

// Where decoding can restart for a checksum-block boundary, as the pass saw it.
struct BoundaryRestart {
  uint64_t boundary = 0;  // the checksum-block boundary it serves
  uint64_t out = 0;       // its output offset (<= boundary: a match may straddle it)
  uint64_t bit = 0;       // its input bit position in the blob
  bool inside = false;    // inside a block (else at a block's start)
  bool stored = false;    // inside a stored block: none is made (its bytes are the blob's: raw span table)
  uint64_t header_first = 0, header_end = 0;  // inside: the block header's bits
};

}  // namespace

std::vector<uint8_t> CopyBits(std::span<const uint8_t> bytes, uint64_t first_bit, uint64_t end_bit) {
  const uint64_t n = end_bit - first_bit;
  std::vector<uint8_t> out((n + 7) / 8, 0);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t b = first_bit + i;
    if ((bytes[b / 8] >> (b % 8)) & 1) out[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  return out;
}

Status AddBlockCheckpoints(const ByteSource& compressed, GzipIndex& index,
                           const std::vector<GzipTargetPlacer::Point>& points_in, const std::string& layer,
                           const BlockCheckpointOptions& options, BlockCheckpointStats* stats) {
  BlockCheckpointStats local;
  BlockCheckpointStats& st = stats ? *stats : local;
  if (!index.has_checksums()) return InvalidArgument("checkpoints inside blocks need an index with block checksums");
  const uint64_t block = index.block_size;
  if (index.block_crcs.size() != (index.decompressed_size + block - 1) / block) {
    return InvalidArgument("gzip index of " + layer + ": its checksums do not fit its decompressed size");
  }
  auto corrupt = [&](uint64_t at, const std::string& why) {
    return Corrupt("gzip data of " + layer + " corrupt at compressed offset " + std::to_string(at) + ": " + why);
  };
  std::vector<GzipTargetPlacer::Point> points = points_in;
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.at < b.at; });

  SequentialReader reader(compressed, 0, SequentialReader::kDefaultPiece);
  ZInflateStream z;
  OCIFS_RETURN_IF_ERROR(z.Init(31));
  // buf[0, pos) is the latest output; it keeps a window and two checksum
  // blocks behind out_total, enough for any candidate still to be chosen.
  const size_t keep = kInsideBlockWindow + 2 * static_cast<size_t>(block) + 1024;
  std::vector<uint8_t> buf(keep + (1u << 20));
  size_t pos = 0;
  uint64_t out_total = 0;
  // The current deflate block: where it started, and its header's end once known.
  constexpr uint64_t kUnknown = UINT64_MAX;
  uint64_t block_start = kUnknown, header_end = kUnknown;
  std::optional<BoundaryRestart> latest;  // the candidate at the latest boundary reached
  std::set<uint64_t> wanted_after;  // boundaries still ahead that a target's end wants
  std::vector<GzipCheckpoint> made;
  uint64_t last_boundary = 0;  // the latest boundary chosen
  size_t next_point = 0;
  Status failed = Status::Ok();

  // Makes the checkpoint for `c` (its window is the output just before
  // c.out, in buf), unless one of the index serves as well.
  auto choose = [&](const BoundaryRestart& c) {
    // The layer's start is a member start; past the index's end there is nothing to serve.
    if (c.boundary == 0 || c.boundary >= index.decompressed_size || c.boundary == last_boundary || !failed.ok()) {
      return;
    }
    last_boundary = c.boundary;
    ++st.wanted;
    if (c.stored) {
      ++st.in_stored;
      return;
    }
    if (made.size() >= options.max_added || st.zwindow_bytes >= options.max_zwindow_bytes) return;
    GzipCheckpoint cp;
    cp.out = c.out;
    cp.in = (c.bit + 7) / 8;
    cp.bits = static_cast<uint8_t>(cp.in * 8 - c.bit);
    auto after = std::upper_bound(index.checkpoints.begin(), index.checkpoints.end(), cp.out,
                                  [](uint64_t out, const GzipCheckpoint& k) { return out < k.out; });
    if (after != index.checkpoints.begin() && (after - 1)->out <= cp.out &&
        (after - 1)->in + options.min_gain >= cp.in) {
      ++st.near_existing;
      return;
    }
    if (after != index.checkpoints.begin() && (after - 1)->out == cp.out) return;
    if (c.inside) {
      const uint64_t first = c.header_first / 8, end = (c.header_end + 7) / 8;
      std::vector<uint8_t> bytes(static_cast<size_t>(end - first));
      if (Status read = ReadExactly(compressed, first, bytes); !read.ok()) {
        failed = read;
        return;
      }
      cp.block_header = CopyBits(bytes, c.header_first % 8, c.header_first % 8 + (c.header_end - c.header_first));
      if (c.header_end - c.header_first > UINT16_MAX || c.header_end - c.header_first < 3 ||
          ((cp.block_header[0] >> 1) & 3) == 0) {
        ++st.in_stored;  // a stored block's bytes are the blob's (raw span table)
        return;
      }
      cp.header_bits = static_cast<uint16_t>(c.header_end - c.header_first);
    }
    const uint64_t behind = out_total - cp.out;  // bytes of buf after the checkpoint
    cp.window_size = static_cast<uint32_t>(std::min<uint64_t>(kInsideBlockWindow, cp.out));
    if (behind + cp.window_size > pos) {
      failed = Internal("gzip checkpoints inside blocks: a window is no longer held");
      return;
    }
    cp.zwindow = CompressWindow(std::span<const uint8_t>(buf.data() + pos - behind - cp.window_size, cp.window_size));
    // Verified: inflated from, it must make the checksum block it serves.
    const uint64_t length = std::min<uint64_t>(block, index.decompressed_size - c.boundary);
    auto got = InflateFromCheckpoint(compressed, cp, static_cast<size_t>(c.boundary - cp.out + length), 0, layer);
    if (!got.ok() || got->size() != c.boundary - cp.out + length ||
        Crc32(std::span<const uint8_t>(*got).subspan(static_cast<size_t>(c.boundary - cp.out))) !=
            index.block_crcs[static_cast<size_t>(c.boundary / block)]) {
      ++st.dropped_verify;
      return;
    }
    if (auto sparse = SparsifyGzipWindow(compressed, cp, index.decompressed_size, layer); !sparse.ok()) {
      failed = sparse.status();
      return;
    }
    st.zwindow_bytes += cp.zwindow.size() + cp.block_header.size();
    made.push_back(std::move(cp));
  };
  // The input reached points[next_point].at, with out_total bytes of output.
  auto reached = [&](const GzipTargetPlacer::Point& p) {
    if (!p.after) {
      const uint64_t boundary = out_total / block * block;
      if (latest && latest->boundary == boundary) choose(*latest);
      return;
    }
    const uint64_t boundary = (out_total + block - 1) / block * block;
    if (latest && latest->boundary == boundary) {
      choose(*latest);
    } else {
      wanted_after.insert(boundary);
    }
  };

  uint64_t member_in = 0;  // the blob offset z's total_in counts from
  bool member_has_input = false;
  for (;;) {
    while (next_point < points.size() && points[next_point].at <= reader.position()) reached(points[next_point++]);
    OCIFS_ASSIGN_OR_RETURN(auto in, reader.Next());
    if (in.empty()) {
      if (!member_has_input && out_total + reader.position() > 0) break;
      return corrupt(reader.position(), "unexpected end of data (truncated)");
    }
    if (pos + (64u << 10) > buf.size()) {
      std::memmove(buf.data(), buf.data() + pos - keep, keep);
      pos = keep;
    }
    size_t avail_in = in.size();
    if (next_point < points.size()) avail_in = std::min<uint64_t>(avail_in, points[next_point].at - reader.position());
    const uint64_t next_boundary = (out_total / block + 1) * block;
    z->next_in = const_cast<Bytef*>(in.data());
    z->avail_in = static_cast<uInt>(avail_in);
    z->next_out = buf.data() + pos;
    z->avail_out = static_cast<uInt>(std::min<uint64_t>(buf.size() - pos, next_boundary - out_total));
    const uInt in_before = z->avail_in, out_before = z->avail_out;
    const int ret = inflate(z.get(), Z_TREES);
    const size_t consumed = in_before - z->avail_in, produced = out_before - z->avail_out;
    reader.Skip(consumed);
    if (consumed > 0) member_has_input = true;
    pos += produced;
    out_total += produced;
    if (ret == Z_STREAM_END) {
      member_has_input = false;
      block_start = header_end = kUnknown;
      latest.reset();
      OCIFS_RETURN_IF_ERROR(z.Init(31));
      member_in = reader.position();
      continue;
    }
    if (ret != Z_OK && ret != Z_BUF_ERROR) return corrupt(reader.position(), z.Message("inflate failed"));
    if (ret == Z_BUF_ERROR && consumed == 0 && produced == 0 && avail_in > 0) {
      return corrupt(reader.position(), "inflate made no progress");
    }
    const uint64_t bit = (member_in + z->total_in) * 8 - static_cast<uint64_t>(z->data_type & 63);
    if ((z->data_type & 128) && !(z->data_type & 64)) {
      block_start = bit;  // the next block's header starts here
      header_end = kUnknown;
    }
    if (z->data_type & 256) header_end = bit;
    if (produced == 0 || out_total % block != 0) continue;
    // At a checksum-block boundary: where a decoder could restart for it.
    const long mark = inflateMark(z.get());
    const long back = mark >> 16;
    const uint64_t emitted = static_cast<uint64_t>(mark & 0xffff);
    latest.reset();
    if (back == -1) {
      if (emitted == 0 && (z->data_type & 128) && !(z->data_type & 64)) {
        latest = BoundaryRestart{.boundary = out_total, .out = out_total, .bit = bit};
      } else {
        latest = BoundaryRestart{.boundary = out_total, .stored = true};
      }
    } else if (block_start != kUnknown && header_end != kUnknown && emitted <= out_total &&
               static_cast<uint64_t>(back) <= bit) {
      latest = BoundaryRestart{.boundary = out_total,
                         .out = out_total - emitted,
                         .bit = bit - static_cast<uint64_t>(back),
                         .inside = true,
                         .header_first = block_start,
                         .header_end = header_end};
    }
    if (latest && wanted_after.erase(out_total) > 0) choose(*latest);
    while (!wanted_after.empty() && *wanted_after.begin() < out_total) wanted_after.erase(wanted_after.begin());
    OCIFS_RETURN_IF_ERROR(failed);
  }
  OCIFS_RETURN_IF_ERROR(failed);
  if (out_total != index.decompressed_size || reader.position() != index.compressed_size) {
    return corrupt(reader.position(), "it inflates to " + std::to_string(out_total) + " bytes, its index says " +
                                          std::to_string(index.decompressed_size));
  }
  st.added = made.size();
  // Merged by output offset (none has the offset of one of the index's).
  std::vector<GzipCheckpoint> merged;
  merged.reserve(index.checkpoints.size() + made.size());
  std::merge(std::make_move_iterator(index.checkpoints.begin()), std::make_move_iterator(index.checkpoints.end()),
             std::make_move_iterator(made.begin()), std::make_move_iterator(made.end()), std::back_inserter(merged),
             [](const GzipCheckpoint& a, const GzipCheckpoint& b) { return a.out < b.out; });
  index.checkpoints = std::move(merged);
  return Status::Ok();
}

}  // namespace ocifs
