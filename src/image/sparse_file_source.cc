#include "image/sparse_file_source.h"

#include <algorithm>
#include <cstring>

namespace ocifs {

Result<std::shared_ptr<SparseFileSource>> SparseFileSource::Make(ByteSourcePtr layer, const TarEntry& entry,
                                                                 std::string name) {
  std::vector<Run> runs;
  uint64_t stored = entry.data_offset;
  uint64_t end = 0;
  for (const SparseRun& r : entry.sparse_map) {
    if (r.offset < end || r.offset > entry.size || r.length > entry.size - r.offset) {
      return Corrupt(name + ": sparse map run (" + std::to_string(r.offset) + ", " + std::to_string(r.length) +
                     ") is out of order or outside the file of " + std::to_string(entry.size) + " bytes");
    }
    if (r.length == 0) continue;
    runs.push_back(Run{r.offset, r.length, stored});
    stored += r.length;
    end = r.offset + r.length;
  }
  if (layer->size() != kUnknownSize && stored > layer->size()) {
    return Corrupt(name + ": sparse data runs extend past the end of " + layer->Describe());
  }
  return std::shared_ptr<SparseFileSource>(
      new SparseFileSource(std::move(layer), std::move(runs), entry.size, std::move(name)));
}

size_t SparseFileSource::RunAfter(uint64_t offset) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), offset,
                             [](uint64_t off, const Run& r) { return off < r.logical + r.length; });
  return static_cast<size_t>(it - runs_.begin());
}

Result<size_t> SparseFileSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size_) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - offset));
  uint64_t pos = offset;
  const uint64_t end = offset + n;
  for (size_t i = RunAfter(offset); pos < end; ++i) {
    uint64_t data_start = i < runs_.size() ? std::max(runs_[i].logical, pos) : end;
    uint64_t zero_end = std::min(data_start, end);
    if (zero_end > pos) {
      std::memset(buf.data() + (pos - offset), 0, zero_end - pos);
      pos = zero_end;
    }
    if (pos >= end || i >= runs_.size()) break;
    const Run& r = runs_[i];
    uint64_t take = std::min(end, r.logical + r.length) - pos;
    OCIFS_RETURN_IF_ERROR(ReadExactly(*layer_, r.stored + (pos - r.logical),
                                      buf.subspan(pos - offset, static_cast<size_t>(take))));
    pos += take;
  }
  return n;
}

Result<Extent> SparseFileSource::ExtentAt(uint64_t offset) const {
  if (offset >= size_) return Extent{offset, 0, false};
  size_t i = RunAfter(offset);
  if (i < runs_.size() && runs_[i].logical <= offset) {
    return Extent{offset, runs_[i].logical + runs_[i].length - offset, false};
  }
  uint64_t hole_end = i < runs_.size() ? runs_[i].logical : size_;
  return Extent{offset, hole_end - offset, true};
}

void SparseFileSource::Prefetch(uint64_t offset, uint64_t length) const {
  uint64_t end = std::min(size_, offset + length);
  for (size_t i = RunAfter(offset); i < runs_.size() && runs_[i].logical < end; ++i) {
    const Run& r = runs_[i];
    uint64_t from = std::max(offset, r.logical);
    uint64_t to = std::min(end, r.logical + r.length);
    layer_->Prefetch(r.stored + (from - r.logical), to - from);
  }
}

}  // namespace ocifs
