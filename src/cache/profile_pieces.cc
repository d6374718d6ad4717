#include "cache/profile_pieces.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include <tsl/robin_map.h>

namespace ocifs {

ProfilePieces::ProfilePieces(std::shared_ptr<const BlobFetcher> fetcher, std::shared_ptr<KeptPieceFile> store,
                             std::span<const uint64_t> pieces, const RangePlanOptions& options)
    : fetcher_(std::move(fetcher)), store_(std::move(store)), piece_size_(store_->chunk_size()) {
  const uint64_t size = fetcher_->size();
  const uint64_t piece_count = (size + piece_size_ - 1) / piece_size_;
  std::vector<uint64_t> missing;
  missing.reserve(pieces.size());
  // A piece whose cache chunk is stored (or coming) is read from there: not
  // fetched again (an index blob's first chunk, read at open; a remount's chunks).
  const uint64_t chunk_size = fetcher_->chunk_size();
  tsl::robin_map<uint64_t, bool> chunk_cached;
  for (uint64_t p : pieces) {
    if (store_->Contains(p)) continue;
    const uint64_t chunk = p * piece_size_ / chunk_size;
    auto [it, fresh] = chunk_cached.try_emplace(chunk, false);
    if (fresh) it.value() = !fetcher_->AllMissing(chunk, chunk);
    if (!it->second) missing.push_back(p);
  }
  runs_ = PlanPieceRuns(missing, piece_count, options);
  state_.assign(runs_.size(), State::kPending);
  by_first_.resize(runs_.size());
  for (size_t i = 0; i < runs_.size(); ++i) {
    const PieceRun& r = runs_[i];
    by_first_[i] = static_cast<uint32_t>(i);
    planned_bytes_ += std::min(size, (r.first + r.count) * piece_size_) - r.first * piece_size_;
  }
  std::sort(by_first_.begin(), by_first_.end(), [this](uint32_t a, uint32_t b) { return runs_[a].first < runs_[b].first; });
}

std::optional<size_t> ProfilePieces::RunOf(uint64_t piece) const {
  // The last run starting at or before `piece` (runs do not overlap).
  auto it = std::upper_bound(by_first_.begin(), by_first_.end(), piece,
                             [this](uint64_t p, uint32_t run) { return p < runs_[run].first; });
  if (it == by_first_.begin()) return std::nullopt;
  const PieceRun& r = runs_[*std::prev(it)];
  if (piece >= r.first + r.count) return std::nullopt;
  return *std::prev(it);
}

bool ProfilePieces::FetchNext() {
  for (;;) {
    const size_t i = next_.fetch_add(1);
    if (i >= runs_.size()) return false;
    {
      std::lock_guard lock(mu_);
      if (state_[i] != State::kPending) continue;  // a reader took it
      state_[i] = State::kFlying;
    }
    FetchRun(i, false);
    return true;
  }
}

void ProfilePieces::FetchRun(size_t i, bool by_reader) {
  const PieceRun& r = runs_[i];
  const uint64_t offset = r.first * piece_size_;
  const size_t length = static_cast<size_t>(std::min(fetcher_->size(), (r.first + r.count) * piece_size_) - offset);
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(length);
  Status st = fetcher_->ReadRange(offset, std::span<uint8_t>(buf.get(), length));
  if (st.ok()) {
    runs_fetched_ += 1;
    if (by_reader) runs_by_readers_ += 1;
    bytes_fetched_ += length;
    for (uint64_t k = 0; k < r.count; ++k) {
      const size_t at = static_cast<size_t>(k * piece_size_);
      const size_t n = std::min<size_t>(static_cast<size_t>(piece_size_), length - at);
      Status put = store_->Put(r.first + k, std::span<const uint8_t>(buf.get() + at, n));
      if (!put.ok()) spdlog::debug("{}: keeping profile piece {}: {}", fetcher_->Describe(), r.first + k, put.ToString());
    }
  } else {
    spdlog::warn("{}: profile prefetch of bytes {}..{}: {}", fetcher_->Describe(), offset, offset + length,
                 st.ToString());
  }
  {
    std::lock_guard lock(mu_);
    state_[i] = st.ok() ? State::kDone : State::kFailed;
  }
  cv_.notify_all();
}

Result<bool> ProfilePieces::Serve(uint64_t offset, std::span<uint8_t> buf) {
  if (buf.empty()) return false;
  const uint64_t first = offset / piece_size_;
  const uint64_t last = (offset + buf.size() - 1) / piece_size_;
  std::vector<size_t> mine, needed;
  {
    std::lock_guard lock(mu_);
    for (uint64_t p = first; p <= last; ++p) {
      const std::optional<size_t> run = RunOf(p);
      if (!run) {
        if (!store_->Contains(p)) return false;  // not the profile's: the chunk path
        continue;
      }
      if (state_[*run] == State::kFailed) return false;
      if (needed.empty() || needed.back() != *run) needed.push_back(*run);
    }
    for (size_t i : needed) {
      if (state_[i] == State::kPending) {
        state_[i] = State::kFlying;  // before a worker: this reader fetches it
        mine.push_back(i);
      }
    }
  }
  for (size_t i : mine) FetchRun(i, true);
  {
    std::unique_lock lock(mu_);
    for (size_t i : needed) {
      cv_.wait(lock, [&] { return state_[i] != State::kFlying; });
      if (state_[i] == State::kFailed) return false;
    }
  }
  // Every piece is kept now (or was dropped since: then the chunk path).
  const uint64_t size = fetcher_->size();
  std::unique_ptr<uint8_t[]> scratch;
  for (uint64_t p = first; p <= last; ++p) {
    const uint64_t start = p * piece_size_;
    const size_t len = static_cast<size_t>(std::min(size, start + piece_size_) - start);
    const uint64_t from = std::max(offset, start);
    const uint64_t to = std::min(offset + buf.size(), start + len);
    std::span<uint8_t> out;
    if (from == start && to == start + len) {
      out = buf.subspan(static_cast<size_t>(start - offset), len);
    } else {
      if (!scratch) scratch = std::make_unique_for_overwrite<uint8_t[]>(piece_size_);
      out = std::span<uint8_t>(scratch.get(), len);
    }
    Result<bool> got = store_->Get(p, out);
    if (!got.ok() || !*got) return false;  // dropped since, or unreadable: the chunk path
    if (out.data() == scratch.get()) {
      std::memcpy(buf.data() + (from - offset), scratch.get() + (from - start), static_cast<size_t>(to - from));
    }
  }
  reads_served_ += 1;
  return true;
}

bool ProfilePieces::Holds(uint64_t offset, uint64_t length) const {
  if (length == 0) return true;
  const uint64_t last = (offset + length - 1) / piece_size_;
  std::lock_guard lock(mu_);
  for (uint64_t p = offset / piece_size_; p <= last; ++p) {
    const std::optional<size_t> run = RunOf(p);
    if (run ? state_[*run] == State::kFailed : !store_->Contains(p)) return false;
  }
  return true;
}

ProfilePieces::Stats ProfilePieces::stats() const {
  return {runs_fetched_.load(), runs_by_readers_.load(), bytes_fetched_.load(), reads_served_.load()};
}

}  // namespace ocifs
