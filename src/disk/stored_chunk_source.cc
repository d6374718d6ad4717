#include "disk/stored_chunk_source.h"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "base/all_zero.h"

namespace ocifs {

StoredChunkSource::StoredChunkSource(ByteSourcePtr inner, std::shared_ptr<DecodedChunkStore> store)
    : inner_(std::move(inner)),
      store_(std::move(store)),
      size_(inner_->size()),
      chunk_(store_->chunk_size()),
      zeros_((size_ + chunk_ - 1) / chunk_, false) {}

bool StoredChunkSource::KnownZero(uint64_t index) const {
  std::lock_guard lock(zeros_mu_);
  return zeros_[index];
}

void StoredChunkSource::MarkZero(uint64_t index) const {
  std::lock_guard lock(zeros_mu_);
  zeros_[index] = true;
}

size_t StoredChunkSource::ChunkLength(uint64_t index) const {
  return static_cast<size_t>(std::min(chunk_, size_ - index * chunk_));
}

Status StoredChunkSource::ReadAndKeep(uint64_t first, uint64_t end, std::span<uint8_t> out) const {
  OCIFS_RETURN_IF_ERROR(ReadExactly(*inner_, first * chunk_, out));
  size_t at = 0;
  for (uint64_t index = first; index < end; ++index) {
    std::span<const uint8_t> data = out.subspan(at, ChunkLength(index));
    at += data.size();
    if (AllZero(data)) {
      MarkZero(index);
      continue;
    }
    Status kept = store_->Put(index, data);
    if (!kept.ok()) spdlog::debug("{}: not keeping chunk {}: {}", Describe(), index, kept.ToString());
  }
  return Status::Ok();
}

Result<size_t> StoredChunkSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (offset >= size_ || buf.empty()) return size_t{0};
  const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size_ - offset));
  const uint64_t end_byte = offset + want;
  const uint64_t last = (end_byte - 1) / chunk_;
  std::vector<uint8_t> scratch;  // chunks the read covers only in part
  // Where chunks [first, end) meet the read: the part of buf and the offset in their bytes.
  auto overlap = [&](uint64_t first, uint64_t end) {
    const uint64_t from = std::max(offset, first * chunk_);
    const uint64_t to = std::min(end_byte, std::min(end * chunk_, size_));
    return std::pair{buf.subspan(static_cast<size_t>(from - offset), static_cast<size_t>(to - from)),
                     static_cast<size_t>(from - first * chunk_)};
  };
  auto whole_in_buf = [&](uint64_t first, uint64_t end) {
    return first * chunk_ >= offset && std::min(end * chunk_, size_) <= end_byte;
  };
  for (uint64_t index = offset / chunk_; index <= last;) {
    if (KnownZero(index)) {
      auto [part, _] = overlap(index, index + 1);
      std::memset(part.data(), 0, part.size());
      ++index;
      continue;
    }
    const size_t length = ChunkLength(index);
    std::span<uint8_t> out;
    if (whole_in_buf(index, index + 1)) {
      out = overlap(index, index + 1).first;
    } else {
      scratch.resize(length);
      out = scratch;
    }
    OCIFS_ASSIGN_OR_RETURN(bool stored, store_->Get(index, out));
    if (stored) {
      if (out.data() == scratch.data()) {
        auto [part, at] = overlap(index, index + 1);
        std::memcpy(part.data(), scratch.data() + at, part.size());
      }
      ++index;
      continue;
    }
    // A run of chunks not kept: one read of inner for all of them.
    uint64_t end = index + 1;
    while (end <= last && !KnownZero(end) && !store_->Contains(end)) ++end;
    const size_t run_bytes = static_cast<size_t>(std::min(end * chunk_, size_) - index * chunk_);
    if (whole_in_buf(index, end)) {
      OCIFS_RETURN_IF_ERROR(ReadAndKeep(index, end, overlap(index, end).first));
    } else {
      scratch.resize(run_bytes);
      OCIFS_RETURN_IF_ERROR(ReadAndKeep(index, end, scratch));
      auto [part, at] = overlap(index, end);
      std::memcpy(part.data(), scratch.data() + at, part.size());
    }
    index = end;
  }
  return want;
}

void StoredChunkSource::Prefetch(uint64_t offset, uint64_t length) const {
  if (offset >= size_ || length == 0) return;
  const uint64_t first = offset / chunk_;
  const uint64_t last = (std::min(size_, offset + length) - 1) / chunk_;
  for (uint64_t index = first; index <= last; ++index) {
    if (!KnownZero(index) && !store_->Contains(index)) {
      inner_->Prefetch(index * chunk_, std::min(size_, offset + length) - index * chunk_);
      return;
    }
  }
}

}  // namespace ocifs
