#include "decode/gzip_saved_index.h"
#include "base/crc32.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "decode/gzip_index_v4.h"

namespace ocifs {

namespace {

// Whether a whole checksum block inside one of `index`'s zero runs has
// another checksum than zeros': its runs and its checksums contradict each
// other (a run's edge blocks, part data, cannot be checked without inflating).
bool ZeroRunsContradictChecksums(const GzipIndex& index) {
  if (!index.has_checksums() || index.zero_runs.empty()) return false;
  const uint64_t size = index.block_size;
  const std::vector<uint8_t> zeros(size, 0);
  auto zeros_crc = [&](uint64_t n) {
    return Crc32(std::span<const uint8_t>(zeros.data(), static_cast<size_t>(n)));
  };
  const uint32_t whole = zeros_crc(size);
  for (const auto& [start, end] : index.zero_runs) {
    for (uint64_t block = (start + size - 1) / size; block < index.block_crcs.size(); ++block) {
      const uint64_t block_end = std::min((block + 1) * size, index.decompressed_size);
      if (block_end > end) break;
      const uint64_t n = block_end - block * size;
      if (index.block_crcs[block] != (n == size ? whole : zeros_crc(n))) return true;
    }
  }
  return false;
}

// Whether `index` was built for `compressed`: its size, and its last bytes (one small range read).
bool BuiltFor(const ByteSource& compressed, const GzipIndex& index) {
  const uint64_t csize = compressed.size();
  std::vector<uint8_t> tail(index.tail.size());
  bool same = csize == index.compressed_size;
  if (same && !tail.empty()) {
    Status s = ReadExactly(compressed, csize - tail.size(), tail);
    same = s.ok() && tail == index.tail;
  }
  return same;
}

}  // namespace

std::optional<GzipIndex> LoadGzipIndexFor(const ByteSource& compressed, const std::string& path) {
  if (path.empty()) return std::nullopt;
  Result<GzipIndex> index = GzipIndex::Load(path);
  if (!index.ok()) {
    if (index.status().code() != Code::kNotFound) {
      spdlog::warn("ignoring gzip index of {} and rebuilding it: {}", compressed.Describe(),
                   index.status().ToString());
    }
    return std::nullopt;
  }
  if (!BuiltFor(compressed, *index)) {
    spdlog::warn("ignoring gzip index {}: it was built for another blob than {}", path, compressed.Describe());
    return std::nullopt;
  }
  if (ZeroRunsContradictChecksums(*index)) {
    spdlog::warn("ignoring gzip index {} of {} and rebuilding it: its runs of zeros contradict its checksums", path,
                 compressed.Describe());
    return std::nullopt;
  }
  return std::move(*index);
}

namespace {

// `index` (parsed from `what`) as an untrusted index keeps it: with checksums, without zero runs.
Status MakeUntrusted(GzipIndex& index, const std::string& what) {
  if (!index.has_checksums()) {
    return Unsupported("gzip index " + what +
                       " has no block checksums (version 1 or 2): an index from elsewhere must carry them "
                       "(version 3) to be verified, so it is not used");
  }
  index.zero_runs.clear();
  index.zero_runs_known = false;
  return Status::Ok();
}

}  // namespace

std::optional<GzipIndex> OpenLazyGzipIndexFor(const ByteSource& compressed, const ByteSourcePtr& index_blob,
                                              const std::string& name, const std::string& from) {
  if (!index_blob) return std::nullopt;
  const std::string what = name.empty() ? index_blob->Describe() : name;
  const std::string prefix = from.empty() ? "" : from + ": ";
  Result<GzipIndex> index = GzipIndexV4::Open(index_blob, what);
  Status usable = index.ok() ? MakeUntrusted(*index, what) : index.status();
  if (!usable.ok()) {
    spdlog::warn("{}not using its gzip index of {}: {}", prefix, compressed.Describe(), usable.ToString());
    return std::nullopt;
  }
  if (!BuiltFor(compressed, *index)) {
    spdlog::warn("{}not using its gzip index {}: it was built for another blob than {}", prefix, what,
                 compressed.Describe());
    return std::nullopt;
  }
  spdlog::debug("gzip layer {}: {} checkpoints from {}, windows read on use", compressed.Describe(),
                index->checkpoints.size(), what);
  return std::move(*index);
}

Result<GzipIndex> UntrustedGzipIndex(std::span<const uint8_t> bytes, const std::string& what) {
  OCIFS_ASSIGN_OR_RETURN(GzipIndex index, GzipIndex::Parse(bytes, what));
  OCIFS_RETURN_IF_ERROR(MakeUntrusted(index, what));
  return index;
}

Status SaveUntrustedGzipIndex(std::span<const uint8_t> bytes, const std::string& what, const std::string& out_path) {
  OCIFS_ASSIGN_OR_RETURN(GzipIndex index, UntrustedGzipIndex(bytes, what));
  return index.Save(out_path);
}

Status RewriteWithoutZeroRuns(const std::string& in_path, const std::string& out_path) {
  OCIFS_ASSIGN_OR_RETURN(GzipIndex index, GzipIndex::Load(in_path));
  OCIFS_RETURN_IF_ERROR(MakeUntrusted(index, in_path));
  return index.Save(out_path);  // its windows are read from in_path's file, open since Load
}

void Version1Zeros::Start(size_t span_count) {
  scanned_ = std::make_unique<std::atomic<bool>[]>(span_count);
  for (size_t i = 0; i < span_count; ++i) scanned_[i].store(false, std::memory_order_relaxed);
  span_count_ = span_count;
}

void Version1Zeros::Learn(size_t index, uint64_t out, std::span<const uint8_t> bytes) {
  if (index >= span_count_) return;  // inactive
  zeros_.AddFrom(out, bytes);
  scanned_[index].store(true, std::memory_order_release);  // after its zeros are in zeros_
}

}  // namespace ocifs
