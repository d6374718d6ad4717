#include "decode/block_checksums.h"
#include "base/crc32.h"


#include <algorithm>

namespace ocifs {
namespace {

uint32_t CrcOf(uint32_t crc, std::span<const uint8_t> bytes) {
  return Crc32(crc, bytes);
}

}  // namespace

BlockCrcBuilder::BlockCrcBuilder(uint32_t block_size) : block_size_(block_size == 0 ? 1 : block_size) {}

void BlockCrcBuilder::Feed(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const size_t n = std::min<size_t>(bytes.size(), block_size_ - in_block_);
    crc_ = CrcOf(crc_, bytes.first(n));
    in_block_ += static_cast<uint32_t>(n);
    bytes = bytes.subspan(n);
    if (in_block_ == block_size_) {
      crcs_.push_back(crc_);
      crc_ = 0;
      in_block_ = 0;
    }
  }
}

std::vector<uint32_t> BlockCrcBuilder::Finish() {
  if (in_block_ > 0) crcs_.push_back(crc_);
  crc_ = 0;
  in_block_ = 0;
  return std::move(crcs_);
}

BlockChecksums::BlockChecksums(uint32_t block_size, std::vector<uint32_t> crcs, uint64_t size, std::string what)
    : block_size_(block_size == 0 ? 1 : block_size),
      crcs_(std::move(crcs)),
      size_(size),
      what_(std::move(what)),
      bits_(std::make_unique<std::atomic<uint64_t>[]>(crcs_.size() / 64 + 1)) {
  for (size_t i = 0; i < crcs_.size() / 64 + 1; ++i) bits_[i].store(0, std::memory_order_relaxed);
}

uint64_t BlockChecksums::BlockEnd(uint64_t block) const {
  return std::min(size_, (block + 1) * block_size_);
}

std::pair<uint64_t, uint64_t> BlockChecksums::Widen(uint64_t from, uint64_t to) const {
  to = std::min(to, size_);
  if (from >= to) return {from, from};
  const uint64_t first = from / block_size_, last = (to - 1) / block_size_;
  if (!Verified(first)) from = first * block_size_;
  if (!Verified(last)) to = BlockEnd(last);
  return {from, to};
}

std::pair<uint64_t, uint64_t> BlockChecksums::WholeBlocks(uint64_t from, uint64_t to) const {
  to = std::min(to, size_);
  const uint64_t start = (from + block_size_ - 1) / block_size_ * block_size_;
  const uint64_t end = to == size_ ? to : to / block_size_ * block_size_;
  if (start >= end) return {from, from};
  return {start, end};
}

Status BlockChecksums::Check(uint64_t offset, std::span<const uint8_t> bytes, const OnVerified& on_verified) const {
  const auto [start, end] = WholeBlocks(offset, offset + bytes.size());
  for (uint64_t at = start; at < end; at = BlockEnd(at / block_size_)) {
    const uint64_t block = at / block_size_;
    if (Verified(block)) continue;
    const auto piece = bytes.subspan(static_cast<size_t>(at - offset), static_cast<size_t>(BlockEnd(block) - at));
    if (CrcOf(0, piece) != crcs_[block]) {
      return DataLoss("gzip index of " + what_ + " is wrong: block " + std::to_string(block) +
                      " at decompressed offset " + std::to_string(at) + " does not match its checksum");
    }
    if (on_verified) on_verified(at, piece);
    bits_[block / 64].fetch_or(uint64_t{1} << (block % 64), std::memory_order_release);
  }
  return Status::Ok();
}

}  // namespace ocifs
