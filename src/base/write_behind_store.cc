#include "base/write_behind_store.h"

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <cstring>

namespace ocifs {

WriteBehindStore::WriteBehindStore(std::shared_ptr<DecodedChunkStore> inner, uint64_t max_pending_bytes)
    : inner_(std::move(inner)), max_pending_bytes_(max_pending_bytes) {}

WriteBehindStore::~WriteBehindStore() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

Result<bool> WriteBehindStore::Get(uint64_t chunk_index, std::span<uint8_t> out) const {
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(chunk_index);
    if (it != pending_.end()) {
      if (it->second->size() != out.size()) return false;
      if (!out.empty()) std::memcpy(out.data(), it->second->data(), out.size());
      return true;
    }
  }
  return inner_->Get(chunk_index, out);
}

bool WriteBehindStore::Contains(uint64_t chunk_index) const {
  {
    std::lock_guard lock(mu_);
    if (pending_.count(chunk_index) != 0) return true;
  }
  return inner_->Contains(chunk_index);
}

namespace {

Status CheckLength(uint64_t chunk_index, size_t length, uint32_t chunk_size) {
  if (length <= chunk_size) return Status::Ok();
  return InvalidArgument("chunk " + std::to_string(chunk_index) + " has " + std::to_string(length) +
                         " bytes, more than the chunk size " + std::to_string(chunk_size));
}

}  // namespace

Status WriteBehindStore::Put(uint64_t chunk_index, std::span<const uint8_t> data) const {
  OCIFS_RETURN_IF_ERROR(CheckLength(chunk_index, data.size(), inner_->chunk_size()));
  return PutShared(chunk_index, std::make_shared<const std::vector<uint8_t>>(data.begin(), data.end()));
}

Status WriteBehindStore::PutShared(uint64_t chunk_index, SharedChunk data) const {
  if (!data) return InvalidArgument("chunk " + std::to_string(chunk_index) + ": no buffer");
  OCIFS_RETURN_IF_ERROR(CheckLength(chunk_index, data->size(), inner_->chunk_size()));
  {
    std::lock_guard lock(mu_);
    if (stop_ || pending_.count(chunk_index) != 0) return Status::Ok();
    if (pending_bytes_ + data->size() > max_pending_bytes_) {
      ++dropped_;
      return Status::Ok();
    }
    pending_bytes_ += data->size();
    pending_.emplace(chunk_index, std::move(data));
    order_.push_back(chunk_index);
    if (!writer_.joinable()) writer_ = std::thread([this] { RunWriter(); });
  }
  cv_.notify_all();
  return Status::Ok();
}

void WriteBehindStore::Flush() const {
  std::unique_lock lock(mu_);
  urgent_ = true;  // the writer leaves SCHED_IDLE: a busy machine must not stall the flush
  cv_.notify_all();
  cv_.wait(lock, [&] { return order_.empty() && !writing_; });
}

uint64_t WriteBehindStore::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void WriteBehindStore::RunWriter() const {
  // Written in idle CPU time only: a reader that keeps every core busy (a
  // full sequential read) sees its chunks dropped rather than slowed down.
  sched_param param{};
  bool idle = pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !order_.empty(); });
    if (idle && (urgent_ || stop_)) idle = pthread_setschedparam(pthread_self(), SCHED_OTHER, &param) != 0;
    if (order_.empty()) return;  // stopping, and everything is written
    const uint64_t index = order_.front();
    order_.pop_front();
    Chunk chunk = pending_.at(index);
    writing_ = true;
    lock.unlock();
    Status st = inner_->Put(index, *chunk);
    if (!st.ok()) spdlog::debug("cannot keep decompressed chunk {}: {}", index, st.ToString());
    lock.lock();
    // Erased only once written, so a Get in between finds it in one place or the other.
    pending_.erase(index);
    pending_bytes_ -= chunk->size();
    writing_ = false;
    cv_.notify_all();
  }
}

}  // namespace ocifs
