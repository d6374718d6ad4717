#include "decode/gzip_sparse_windows.h"

#include <algorithm>
#include <vector>

#include "decode/gzip_inflate.h"

namespace ocifs {

namespace {

// cp with `window` (cp.window_size bytes) in memory in place of its own.
GzipCheckpoint WithWindow(const GzipCheckpoint& cp, std::span<const uint8_t> window) {
  GzipCheckpoint trial = cp;
  trial.zwindow = CompressWindow(window);
  trial.window_file = nullptr;
  trial.zwindow_offset = 0;
  trial.zwindow_length = 0;
  trial.zwindow_crc = std::nullopt;
  return trial;
}

// The window bytes the first `length` bytes of output after cp copy from
// (directly or through earlier output), as a mask over the window.
Result<std::vector<bool>> ReferencedBytes(const ByteSource& compressed, const GzipCheckpoint& cp, size_t length,
                                          const std::string& layer) {
  const size_t n = cp.window_size;
  std::vector<uint8_t> a(n), b(n), c(n);
  for (size_t j = 0; j < n; ++j) {
    a[j] = static_cast<uint8_t>(j & 0xff);
    b[j] = static_cast<uint8_t>(j >> 8);
    c[j] = static_cast<uint8_t>(0xff - a[j]);
  }
  // A small first read: 32 KiB of output takes at most about that much input.
  constexpr uint64_t kHint = 1;
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> out_a, InflateFromCheckpoint(compressed, WithWindow(cp, a), length, kHint, layer));
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> out_b, InflateFromCheckpoint(compressed, WithWindow(cp, b), length, kHint, layer));
  OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> out_c, InflateFromCheckpoint(compressed, WithWindow(cp, c), length, kHint, layer));
  std::vector<bool> used(n, false);
  const size_t m = std::min({out_a.size(), out_b.size(), out_c.size()});
  for (size_t k = 0; k < m; ++k) {
    if (out_a[k] == out_c[k]) continue;  // a literal, or a copy of one
    const size_t j = out_a[k] | (static_cast<size_t>(out_b[k]) << 8);
    if (j < n) used[j] = true;
  }
  return used;
}

}  // namespace

Status SparsifyGzipWindows(const ByteSource& compressed, GzipIndex& index, const std::string& layer,
                           SparseWindowStats* stats) {
  SparseWindowStats local;
  SparseWindowStats& s = stats ? *stats : local;
  for (GzipCheckpoint& cp : index.checkpoints) {
    if (cp.member_start || cp.window_size == 0 || cp.out >= index.decompressed_size) continue;
    ++s.checkpoints;
    s.window_bytes += cp.window_size;
    std::vector<uint8_t> window(cp.window_size);
    OCIFS_RETURN_IF_ERROR(DecompressWindow(cp, window));
    const uint64_t zbefore = cp.window_file ? cp.zwindow_length : cp.zwindow.size();
    s.zwindow_before += zbefore;
    // Only output within a window's reach of the checkpoint can copy from it.
    const size_t length = static_cast<size_t>(
        std::min<uint64_t>(GzipCheckpoint::kWindowSize, index.decompressed_size - cp.out));
    OCIFS_ASSIGN_OR_RETURN(std::vector<bool> used, ReferencedBytes(compressed, cp, length, layer));
    std::vector<uint8_t> sparse(cp.window_size, 0);
    size_t kept = 0;
    for (size_t j = 0; j < sparse.size(); ++j) {
      if (used[j]) {
        sparse[j] = window[j];
        ++kept;
      }
    }
    GzipCheckpoint trial = WithWindow(cp, sparse);
    // Checked: the sparse window must make the same output as the real one.
    OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> want, InflateFromCheckpoint(compressed, cp, length, 1, layer));
    OCIFS_ASSIGN_OR_RETURN(std::vector<uint8_t> got, InflateFromCheckpoint(compressed, trial, length, 1, layer));
    if (got != want || trial.zwindow.empty() || trial.zwindow.size() >= zbefore) {
      s.bytes_kept += cp.window_size;
      s.zwindow_after += zbefore;
      continue;
    }
    s.bytes_kept += kept;
    s.zwindow_after += trial.zwindow.size();
    ++s.sparse;
    cp = std::move(trial);
  }
  return Status::Ok();
}

}  // namespace ocifs
