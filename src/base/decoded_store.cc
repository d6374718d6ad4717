#include "base/decoded_store.h"

#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ocifs {

namespace {

// The default partial reads: the whole chunk of `length` bytes read by
// `get_whole`, then bytes [offset, offset + out.size()) copied out.
template <class GetWhole>
Result<bool> CopyPartOfWhole(size_t length, size_t offset, std::span<uint8_t> out, GetWhole get_whole) {
  if (offset > length || out.size() > length - offset) return false;
  std::vector<uint8_t> chunk(length);
  OCIFS_ASSIGN_OR_RETURN(const bool found, get_whole(std::span<uint8_t>(chunk)));
  if (found && !out.empty()) std::memcpy(out.data(), chunk.data() + offset, out.size());
  return found;
}

}  // namespace

Result<bool> DecodedChunkStore::GetPartStoredByAnyone(uint64_t chunk_index, size_t offset,
                                                      std::span<uint8_t> out) const {
  return CopyPartOfWhole(chunk_size(), offset, out,
                         [&](std::span<uint8_t> whole) { return GetStoredByAnyone(chunk_index, whole); });
}

Result<bool> DecodedChunkStore::GetPart(uint64_t chunk_index, size_t length, size_t offset,
                                        std::span<uint8_t> out) const {
  return CopyPartOfWhole(length, offset, out, [&](std::span<uint8_t> whole) { return Get(chunk_index, whole); });
}

namespace {

class MemoryDecodedStore final : public DecodedChunkStore {
 public:
  explicit MemoryDecodedStore(uint32_t chunk_size) : chunk_size_(chunk_size) {}

  uint32_t chunk_size() const override { return chunk_size_; }

  Result<bool> Get(uint64_t chunk_index, std::span<uint8_t> out) const override {
    std::lock_guard lock(mu_);
    auto it = chunks_.find(chunk_index);
    if (it == chunks_.end() || it->second.size() != out.size()) return false;
    if (!out.empty()) std::memcpy(out.data(), it->second.data(), out.size());
    return true;
  }

  Result<bool> GetPart(uint64_t chunk_index, size_t length, size_t offset, std::span<uint8_t> out) const override {
    std::lock_guard lock(mu_);
    auto it = chunks_.find(chunk_index);
    if (it == chunks_.end() || it->second.size() != length || offset > length || out.size() > length - offset) {
      return false;
    }
    if (!out.empty()) std::memcpy(out.data(), it->second.data() + offset, out.size());
    return true;
  }

  Status Put(uint64_t chunk_index, std::span<const uint8_t> data) const override {
    if (data.size() > chunk_size_) {
      return InvalidArgument("decoded chunk " + std::to_string(chunk_index) + " has " +
                             std::to_string(data.size()) + " bytes, more than the chunk size " +
                             std::to_string(chunk_size_));
    }
    std::lock_guard lock(mu_);
    chunks_[chunk_index].assign(data.begin(), data.end());
    return Status::Ok();
  }

  bool Contains(uint64_t chunk_index) const override {
    std::lock_guard lock(mu_);
    return chunks_.count(chunk_index) != 0;
  }

 private:
  const uint32_t chunk_size_;
  mutable std::mutex mu_;  // guards chunks_
  mutable std::unordered_map<uint64_t, std::vector<uint8_t>> chunks_;
};

}  // namespace

std::shared_ptr<DecodedChunkStore> MakeMemoryDecodedStore(uint32_t chunk_size) {
  return std::make_shared<MemoryDecodedStore>(chunk_size == 0 ? (1u << 20) : chunk_size);
}

}  // namespace ocifs
