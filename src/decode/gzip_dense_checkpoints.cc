#include "decode/gzip_dense_checkpoints.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "decode/gzip_indexer.h"
#include "decode/gzip_sparse_windows.h"

namespace ocifs {

Status AddSparseCheckpoints(const ByteSource& compressed, GzipIndex& index, const std::string& layer,
                            const DenseCheckpointOptions& options, DenseCheckpointStats* stats) {
  DenseCheckpointStats local;
  DenseCheckpointStats& s = stats ? *stats : local;
  std::vector<uint64_t> present;
  present.reserve(index.checkpoints.size());
  for (const GzipCheckpoint& cp : index.checkpoints) present.push_back(cp.out);
  std::sort(present.begin(), present.end());
  // Whether a checkpoint is already within half a spacing of `out`.
  auto near_one = [&](uint64_t out) {
    auto it = std::lower_bound(present.begin(), present.end(), out);
    const uint64_t half = options.spacing / 2;
    if (it != present.end() && *it - out < half) return true;
    return it != present.begin() && out - *std::prev(it) < half;
  };

  std::vector<GzipCheckpoint> added;
  Status failed;
  GzipIndexer indexer(compressed, layer, options.spacing);
  indexer.SetReadAhead(uint64_t{8} << 20);
  GzipIndexer::Callbacks callbacks;
  callbacks.on_output = [](uint64_t, std::span<const uint8_t>) {};
  callbacks.on_checkpoint = [&](GzipCheckpoint cp) {
    if (!failed.ok() || cp.out == 0 || cp.out >= index.decompressed_size || near_one(cp.out)) return;
    if (added.size() >= options.max_added || s.zwindow_bytes >= options.max_zwindow_bytes) return;
    ++s.candidates;
    if (!cp.member_start) {
      Result<bool> sparse = SparsifyGzipWindow(compressed, cp, index.decompressed_size, layer);
      if (!sparse.ok()) {
        failed = sparse.status();
        return;
      }
      if (!*sparse || cp.zwindow.size() > options.max_zwindow) return;
      s.zwindow_bytes += cp.zwindow.size();
    }
    added.push_back(std::move(cp));
  };
  std::atomic<bool> cancel{false};
  Result<uint64_t> size = indexer.Run(callbacks, cancel);
  if (!size.ok()) return size.status();
  OCIFS_RETURN_IF_ERROR(failed);
  if (*size != index.decompressed_size) {
    return Corrupt("gzip data of " + layer + " decompresses to " + std::to_string(*size) + " bytes, its index says " +
                   std::to_string(index.decompressed_size));
  }
  s.added = added.size();
  for (GzipCheckpoint& cp : added) index.checkpoints.push_back(std::move(cp));
  std::stable_sort(index.checkpoints.begin(), index.checkpoints.end(),
                   [](const GzipCheckpoint& a, const GzipCheckpoint& b) { return a.out < b.out; });
  return Status::Ok();
}

}  // namespace ocifs
