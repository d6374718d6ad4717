#include "decode/gzip_saved_index.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace ocifs {

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
  const uint64_t csize = compressed.size();
  std::vector<uint8_t> tail(index->tail.size());
  bool same = csize == index->compressed_size;
  if (same && !tail.empty()) {
    Status s = ReadExactly(compressed, csize - tail.size(), tail);
    same = s.ok() && tail == index->tail;
  }
  if (!same) {
    spdlog::warn("ignoring gzip index {}: it was built for another blob than {}", path, compressed.Describe());
    return std::nullopt;
  }
  return std::move(*index);
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
