#include "decode/gzip_checkpoints.h"

#include <fcntl.h>
#include <cerrno>
#include <unistd.h>

#include "base/crc32.h"

namespace ocifs {
namespace {

bool WriteSpilledWindow(int fd, std::span<const uint8_t> data, uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace

void GzipCheckpoints::Reset(std::vector<GzipCheckpoint> checkpoints) {
  std::lock_guard lock(mu_);
  list_ = std::move(checkpoints);
}

bool GzipCheckpoints::SpillWindowsTo(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) return false;
  UniqueFd reader(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!reader.valid()) return false;
  spill_file_ = std::make_shared<const GzipWindowFile>(std::move(reader), dir + "/(checkpoint windows)");
  spill_fd_ = std::move(fd);
  return true;
}

void GzipCheckpoints::Spill(GzipCheckpoint& cp) {
  if (cp.zwindow.empty() || cp.window_file) return;
  // Inside a block, the window's place holds the block header first (as in a saved index).
  std::vector<uint8_t> region = cp.block_header;
  region.insert(region.end(), cp.zwindow.begin(), cp.zwindow.end());
  if (!WriteSpilledWindow(spill_fd_.get(), region, spill_end_)) return;
  cp.window_file = spill_file_;
  cp.zwindow_offset = spill_end_;
  cp.zwindow_length = static_cast<uint32_t>(region.size());
  cp.zwindow_crc = Crc32(region);
  std::vector<uint8_t>().swap(cp.zwindow);
  std::vector<uint8_t>().swap(cp.block_header);
  spill_end_ += region.size();
}

size_t GzipCheckpoints::Append(GzipCheckpoint checkpoint) {
  if (spill_file_) Spill(checkpoint);  // outside mu_: readers copy checkpoints meanwhile
  std::lock_guard lock(mu_);
  list_.push_back(std::move(checkpoint));
  return list_.size() - 1;
}

size_t GzipCheckpoints::count() const {
  std::lock_guard lock(mu_);
  return list_.size();
}

GzipCheckpoint GzipCheckpoints::At(size_t index) const {
  std::lock_guard lock(mu_);
  return list_[index];
}

size_t GzipCheckpoints::IndexOfLocked(uint64_t pos) const {
  // The span [checkpoint i, checkpoint i + 1) holding pos.
  auto it = std::upper_bound(list_.begin(), list_.end(), pos,
                             [](uint64_t p, const GzipCheckpoint& c) { return p < c.out; });
  return static_cast<size_t>(it - list_.begin()) - 1;
}

GzipCheckpoints::Span GzipCheckpoints::SpanLocked(size_t index, uint64_t frontier) const {
  const GzipCheckpoint& cp = list_[index];
  Span span;
  span.index = index;
  span.out = cp.out;
  span.has_next = index + 1 < list_.size();
  span.end = span.has_next ? list_[index + 1].out : frontier;
  // The next checkpoint may start mid-byte: its byte in - 1 is needed too.
  span.compressed_hint = span.has_next ? list_[index + 1].in - cp.in + 1 : 0;
  return span;
}

std::pair<uint64_t, uint64_t> GzipCheckpoints::CompressedRange(uint64_t from, uint64_t to,
                                                               uint64_t compressed_size) const {
  std::lock_guard lock(mu_);
  if (list_.empty()) return {0, 0};
  const size_t i = IndexOfLocked(from);
  const uint64_t in_start = list_[i].in > 0 ? list_[i].in - 1 : 0;  // the checkpoint may start mid-byte
  size_t j = i;
  while (j + 1 < list_.size() && list_[j + 1].out < to) ++j;
  const uint64_t in_end = j + 1 < list_.size() ? list_[j + 1].in + 1 : compressed_size;
  return {in_start, in_end};
}

Status GzipCheckpoints::SaveComplete(const GzipIndex& index, const std::string& path) {
  // The table no longer grows; readers only copy from it under mu_, and only
  // the caller changes it (ApplyTo, below, under mu_): reading it unlocked
  // keeps reads going while the file is written and synced.
  Result<GzipIndex::SavedWindows> saved = index.SaveWithPlaces(path, list_);
  if (!saved.ok()) return saved.status();
  // Saved: read windows from the file from now on, and free the ones in memory.
  {
    std::lock_guard lock(mu_);
    saved->ApplyTo(list_);
  }
  // Every spilled window now has its place in the index: the spill file goes
  // once the last copy of a checkpoint read before this lets go of it.
  spill_file_.reset();
  spill_fd_.reset();
  spill_end_ = 0;
  return Status::Ok();
}

}  // namespace ocifs
