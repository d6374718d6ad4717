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

uint64_t ProfilePieces::RunBytes(size_t i) const {
  const PieceRun& r = runs_[i];
  return std::min(fetcher_->size(), (r.first + r.count) * piece_size_) - r.first * piece_size_;
}

bool ProfilePieces::FetchNext() {
  std::vector<size_t> group;
  {
    const bool together = together_.load(std::memory_order_relaxed);
    uint64_t bytes = 0;
    std::lock_guard lock(mu_);
    for (; next_ < runs_.size(); ++next_) {
      if (state_[next_] != State::kPending) continue;  // a reader took it
      const uint64_t length = RunBytes(next_);
      if (!group.empty() && (!together || bytes + length > kGroupBytes || group.size() >= kGroupRuns)) break;
      state_[next_] = State::kFlying;
      group.push_back(next_);
      bytes += length;
    }
  }
  if (group.empty()) return false;
  if (group.size() == 1) {
    FetchRun(group[0], false);
  } else {
    FetchGroup(std::move(group));
  }
  return true;
}

void ProfilePieces::FetchRun(size_t i, bool by_reader) {
  const PieceRun& r = runs_[i];
  const uint64_t offset = r.first * piece_size_;
  const size_t length = static_cast<size_t>(RunBytes(i));
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(length);
  requests_ += 1;
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
  EndRun(i, st.ok());
}

void ProfilePieces::EndRun(size_t i, bool ok) {
  {
    std::lock_guard lock(mu_);
    state_[i] = ok ? State::kDone : State::kFailed;
  }
  cv_.notify_all();
}

void ProfilePieces::FetchGroup(std::vector<size_t> group) {
  std::sort(group.begin(), group.end(), [this](size_t a, size_t b) { return runs_[a].first < runs_[b].first; });
  // The runs' bytes, adjacent runs as one range.
  std::vector<ByteRange> ranges;
  for (size_t i : group) {
    const uint64_t offset = runs_[i].first * piece_size_;
    if (!ranges.empty() && ranges.back().offset + ranges.back().length == offset) {
      ranges.back().length += RunBytes(i);
    } else {
      ranges.push_back(ByteRange{offset, RunBytes(i)});
    }
  }
  // Per run of the group (in `group`'s order): its pieces still to come, and which came.
  std::vector<uint64_t> left(group.size());
  std::vector<std::vector<bool>> kept(group.size());
  for (size_t k = 0; k < group.size(); ++k) {
    left[k] = runs_[group[k]].count;
    kept[k].assign(runs_[group[k]].count, false);
  }
  const uint64_t size = fetcher_->size();
  auto piece_arrived = [&](uint64_t piece, std::span<const uint8_t> bytes) {
    auto it = std::upper_bound(group.begin(), group.end(), piece,
                               [this](uint64_t p, size_t run) { return p < runs_[run].first; });
    if (it == group.begin()) return;
    const size_t k = static_cast<size_t>(std::prev(it) - group.begin());
    const PieceRun& r = runs_[group[k]];
    if (piece >= r.first + r.count || kept[k][piece - r.first]) return;  // a gap's, or again after a retry
    Status put = store_->Put(piece, bytes);
    if (!put.ok()) spdlog::debug("{}: keeping profile piece {}: {}", fetcher_->Describe(), piece, put.ToString());
    kept[k][piece - r.first] = true;
    if (--left[k] == 0) {
      runs_fetched_ += 1;
      bytes_fetched_ += RunBytes(group[k]);
      EndRun(group[k], true);
    }
  };
  // One piece gathered at a time: its bytes come in order within a range.
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(piece_size_);
  uint64_t gathering = UINT64_MAX;  // the piece in buf
  uint64_t filled = 0;
  auto consume = [&](uint64_t at, std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      const uint64_t piece = at / piece_size_;
      const uint64_t in = at % piece_size_;
      const uint64_t piece_length = std::min(size, (piece + 1) * piece_size_) - piece * piece_size_;
      if (piece != gathering || in != filled) {
        if (in != 0) {  // a piece's middle without its start (a retry): skip to the next piece
          const size_t skip = static_cast<size_t>(std::min<uint64_t>(bytes.size(), piece_length - in));
          at += skip;
          bytes = bytes.subspan(skip);
          gathering = UINT64_MAX;
          continue;
        }
        gathering = piece;
        filled = 0;
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), piece_length - filled));
      std::memcpy(buf.get() + filled, bytes.data(), n);
      filled += n;
      at += n;
      bytes = bytes.subspan(n);
      if (filled == piece_length) {
        piece_arrived(piece, std::span<const uint8_t>(buf.get(), static_cast<size_t>(piece_length)));
        gathering = UINT64_MAX;
      }
    }
    return true;
  };
  requests_ += 1;
  Status st = fetcher_->ReadRanges(ranges, consume);
  const bool one_by_one = st.code() == Code::kUnsupported || st.code() == Code::kCorrupt || st.ok();
  if (!st.ok() && one_by_one && together_.exchange(false)) {
    spdlog::info("{}: profile prefetch asks one range per request from now on: {}", fetcher_->Describe(),
                 st.ToString());
  } else if (!st.ok() && !one_by_one) {
    spdlog::warn("{}: profile prefetch of {} ranges: {}", fetcher_->Describe(), ranges.size(), st.ToString());
  }
  for (size_t k = 0; k < group.size(); ++k) {
    if (left[k] == 0) continue;
    if (one_by_one) {
      FetchRun(group[k], false);
    } else {
      EndRun(group[k], false);
    }
  }
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
  return {requests_.load(), runs_fetched_.load(), runs_by_readers_.load(), bytes_fetched_.load(), reads_served_.load()};
}

}  // namespace ocifs
