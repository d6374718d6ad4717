#include "decode/gzip_sparse_windows.h"

#include <zlib.h>

#include <algorithm>
#include <vector>

#include "decode/gzip_inflate.h"

namespace ocifs {

namespace {

// The compressed bytes each inflate below reads at a time: a window's reach
// of output (32 KiB) takes at most about 9/8 of it in compressed bytes (the
// codes of incompressible data), so one read suffices. InflateFromCheckpoint
// reads its hint (plus kSpanReadPast) at a time, however small.
constexpr uint64_t kReadHint = GzipCheckpoint::kWindowSize / 8 * 9;

// cp with `window` (cp.window_size bytes) in memory in place of its own;
// `stored`: zlib level 0 (a trial window, inflated once), else CompressWindow's.
GzipCheckpoint WithWindow(const GzipCheckpoint& cp, std::span<const uint8_t> window, bool stored = false) {
  GzipCheckpoint trial = cp;
  if (stored) {
    uLongf len = compressBound(static_cast<uLong>(window.size()));
    trial.zwindow.resize(len);
    if (compress2(trial.zwindow.data(), &len, window.data(), static_cast<uLong>(window.size()), 0) != Z_OK) len = 0;
    trial.zwindow.resize(len);
  } else {
    trial.zwindow = CompressWindow(window);
  }
  trial.window_file = nullptr;
  trial.zwindow_offset = 0;
  trial.zwindow_length = 0;
  trial.zwindow_crc = std::nullopt;
  return trial;
}

// Which bytes of cp's window (`window`) the first `length` bytes of output
// after cp copy from (directly or through earlier output), and that output.
struct References {
  std::vector<uint8_t> used;    // a flag per window byte
  std::vector<uint8_t> output;  // the output with the real window
};
Result<References> ReferencedBytes(const ByteSource& compressed, const GzipCheckpoint& cp,
                                   std::span<const uint8_t> window, size_t length, const std::string& layer) {
  const size_t n = cp.window_size;
  std::vector<uint8_t> a(n), b(n), c(n);
  for (size_t j = 0; j < n; ++j) {
    a[j] = static_cast<uint8_t>(j & 0xff);
    b[j] = static_cast<uint8_t>(j >> 8);
    c[j] = static_cast<uint8_t>(0xff - a[j]);
  }
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> out_a,
                         InflateFromCheckpoint(compressed, WithWindow(cp, a, true), length, kReadHint, layer));
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> out_b,
                         InflateFromCheckpoint(compressed, WithWindow(cp, b, true), length, kReadHint, layer));
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> out_c,
                         InflateFromCheckpoint(compressed, WithWindow(cp, c, true), length, kReadHint, layer));
  References r;
  r.used.assign(n, 0);
  r.output = std::move(out_a);
  const size_t m = std::min({r.output.size(), out_b.size(), out_c.size()});
  r.output.resize(m);
  for (size_t k = 0; k < m; ++k) {
    if (r.output[k] == out_c[k]) continue;  // a literal, or a copy of one
    const size_t j = r.output[k] | (static_cast<size_t>(out_b[k]) << 8);
    if (j >= n) return Internal("sparse gzip window: a copy from beyond the window");
    r.used[j] = 1;
    r.output[k] = window[j];
  }
  return r;
}

}  // namespace

Result<bool> SparsifyGzipWindow(const ByteSource& compressed, GzipCheckpoint& cp, uint64_t decompressed_size,
                                const std::string& layer, SparseWindowStats* stats) {
  SparseWindowStats local;
  SparseWindowStats& s = stats ? *stats : local;
  if (cp.member_start || cp.window_size == 0 || cp.out >= decompressed_size) return false;
  ++s.checkpoints;
  s.window_bytes += cp.window_size;
  std::vector<uint8_t> window(cp.window_size);
  OCIFS_RETURN_IF_ERROR(DecompressWindow(cp, window));
  const uint64_t zbefore = cp.window_file ? cp.zwindow_length : cp.zwindow.size();
  s.zwindow_before += zbefore;
  // Only output within a window's reach of the checkpoint can copy from it.
  const size_t length =
      static_cast<size_t>(std::min<uint64_t>(GzipCheckpoint::kWindowSize, decompressed_size - cp.out));
  OCIFS_ASSIGN_OR_RETURN(References refs, ReferencedBytes(compressed, cp, window, length, layer));
  std::vector<uint8_t> sparse(cp.window_size, 0);
  size_t kept = 0;
  for (size_t j = 0; j < sparse.size(); ++j) {
    if (refs.used[j]) {
      sparse[j] = window[j];
      ++kept;
    }
  }
  GzipCheckpoint trial = WithWindow(cp, sparse);
  // Checked: the sparse window must make the output the real one makes.
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> got, InflateFromCheckpoint(compressed, trial, length, kReadHint, layer));
  const std::vector<uint8_t>& want = refs.output;
  if (got != want || trial.zwindow.empty() || trial.zwindow.size() >= zbefore) {
    s.bytes_kept += cp.window_size;
    s.zwindow_after += zbefore;
    return false;
  }
  s.bytes_kept += kept;
  s.zwindow_after += trial.zwindow.size();
  ++s.sparse;
  cp = std::move(trial);
  return true;
}

Status SparsifyGzipWindows(const ByteSource& compressed, GzipIndex& index, const std::string& layer,
                           SparseWindowStats* stats) {
  for (GzipCheckpoint& cp : index.checkpoints) {
    OCIFS_RETURN_IF_ERROR(SparsifyGzipWindow(compressed, cp, index.decompressed_size, layer, stats).status());
  }
  return Status::Ok();
}

}  // namespace ocifs
