#include "decode/pass_output_keeper.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/all_zero.h"

namespace ocifs {

PassOutputKeeper::PassOutputKeeper(std::shared_ptr<DecodedChunkStore> store, SharedPassProgress* shared)
    : store_(std::move(store)), shared_(shared), chunk_size_(store_->chunk_size()) {
  buffered_.reserve(static_cast<size_t>(chunk_size_));
}

void PassOutputKeeper::Begin() {
  if (shared_) shared_->Restart(chunk_size_);
}

void PassOutputKeeper::Withdraw() {
  if (shared_) shared_->Withdraw();
}

void PassOutputKeeper::Feed(uint64_t out, std::span<const uint8_t> data) {
  if (out != next_out_) {
    // Not contiguous (never, from a pass): keep nothing more rather than a wrong chunk.
    spdlog::debug("pass output keeper: output at {} after {}; keeping no more", out, next_out_);
    next_out_ = UINT64_MAX;
    return;
  }
  next_out_ = out + data.size();
  while (!data.empty()) {
    const size_t room = static_cast<size_t>(chunk_size_) - buffered_.size();
    const size_t take = std::min(room, data.size());
    buffered_.insert(buffered_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(take));
    data = data.subspan(take);
    if (buffered_.size() == chunk_size_) {
      StoreChunk(buffered_index_);
      buffered_.clear();
      ++buffered_index_;
    }
  }
}

void PassOutputKeeper::Finish(uint64_t size) {
  if (next_out_ != size || buffered_.empty()) return;
  StoreChunk(buffered_index_);
  buffered_.clear();
}

void PassOutputKeeper::StoreChunk(uint64_t index) {
  State state = State::kZero;
  if (!AllZero(buffered_)) {
    Status st = store_->Put(index, buffered_);
    state = st.ok() ? State::kStored : State::kNone;
    if (!st.ok() && !put_failed_) {
      put_failed_ = true;
      spdlog::warn("could not keep a decompressed chunk of a first pass (its reads decompress instead): {}",
                   st.ToString());
    }
  }
  // Published in order, full chunks only (a reader takes every published
  // chunk as chunk_size_ bytes). One the store refused is published too: its
  // readers find it missing and wait for the pass's end.
  if (shared_ && buffered_.size() == chunk_size_) shared_->Publish(index, state == State::kZero);
  std::lock_guard lock(mu_);
  if (states_.size() <= index) states_.resize(index + 1, State::kNone);
  states_[index] = state;
  if (buffered_.size() < chunk_size_) {
    short_index_ = index;
    short_length_ = buffered_.size();
  }
  if (state == State::kStored) ++stored_;
}

PassOutputKeeper::State PassOutputKeeper::StateOf(uint64_t index) const {
  std::lock_guard lock(mu_);
  return index < states_.size() ? states_[index] : State::kNone;
}

uint64_t PassOutputKeeper::LengthOf(uint64_t index) const {
  std::lock_guard lock(mu_);
  return index == short_index_ ? short_length_ : chunk_size_;
}

bool PassOutputKeeper::Copy(uint64_t from, std::span<uint8_t> out) const {
  if (out.empty()) return true;
  const uint64_t to = from + out.size();
  const uint64_t first = from / chunk_size_;
  const uint64_t last = (to - 1) / chunk_size_;
  for (uint64_t i = first; i <= last; ++i) {
    if (StateOf(i) == State::kNone) return false;
  }
  for (uint64_t i = first; i <= last; ++i) {
    const uint64_t start = i * chunk_size_;
    const uint64_t a = std::max(from, start);
    const uint64_t b = std::min(to, start + chunk_size_);
    const std::span<uint8_t> part = out.subspan(static_cast<size_t>(a - from), static_cast<size_t>(b - a));
    if (StateOf(i) == State::kZero) {
      std::fill(part.begin(), part.end(), uint8_t{0});
      continue;
    }
    Result<bool> got = store_->GetPart(i, static_cast<size_t>(LengthOf(i)), static_cast<size_t>(a - start), part);
    if (!got.ok() || !*got) return false;  // dropped since (a bounded cache), or unreadable
  }
  return true;
}

uint64_t PassOutputKeeper::stored_chunks() const {
  std::lock_guard lock(mu_);
  return stored_;
}

}  // namespace ocifs
