#include "cache/chunk_cache.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <spdlog/spdlog.h>

#include "cache/cache_key.h"
#include "cache/chunk_format.h"
#include "cache/chunk_store.h"
#include "cache/chunk_stream.h"
#include "cache/lru_policy.h"
#include "cache/reclaimer.h"
#include "cache/shared_usage.h"

namespace ocifs {
namespace {

// This process remembers the recency of at most this many chunks.
constexpr uint64_t kMaxTrackedChunks = 1u << 20;

Status CheckOptions(const ChunkCacheOptions& o) {
  if (o.dir.empty()) return InvalidArgument("chunk cache: empty cache directory");
  if (!ChunkCache::ValidChunkSize(o.chunk_size)) {
    return InvalidArgument("chunk cache: chunk size " + std::to_string(o.chunk_size) +
                           " is not a power of two in 64 KiB..16 MiB");
  }
  if (o.max_bytes < 2 * (uint64_t{o.chunk_size} + kChunkHeaderSize)) {
    return InvalidArgument("chunk cache: max_bytes " + std::to_string(o.max_bytes) +
                           " holds fewer than two chunks of " + std::to_string(o.chunk_size) + " bytes");
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<ChunkCache>> ChunkCache::Open(const ChunkCacheOptions& options) {
  OCIFS_RETURN_IF_ERROR(CheckOptions(options));
  OCIFS_ASSIGN_OR_RETURN(auto store, ChunkStore::Open(options.dir, options.chunk_size, options.fsync));
  OCIFS_ASSIGN_OR_RETURN(auto usage, SharedUsage::Open(options.dir));
  std::unique_ptr<FetchLeases> leases;
  if (options.lease_wait_ms > 0) {
    OCIFS_ASSIGN_OR_RETURN(leases, FetchLeases::Open(options.dir));
  }
  std::shared_ptr<ChunkCache> cache(new ChunkCache(options, std::move(store), std::move(usage), std::move(leases)));
  if (options.scan_at_open) {
    OCIFS_ASSIGN_OR_RETURN(uint64_t evicted, cache->reclaimer_->Rescan());
    cache->evictions_ += evicted;
  }
  return cache;
}

Result<std::shared_ptr<ChunkCache>> ChunkCache::OpenShared(const ChunkCacheOptions& options) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::weakly_canonical(options.dir, ec);
  const std::string name = ec ? options.dir : dir.string();
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<ChunkCache>> open;  // guarded by mu
  std::lock_guard lock(mu);
  if (auto it = open.find(name); it != open.end()) {
    if (auto cache = it->second.lock()) {
      if (cache->chunk_size() != options.chunk_size) {
        return InvalidArgument("cache directory " + options.dir + " is already open in this process with chunk size " +
                               std::to_string(cache->chunk_size()) + ", not " + std::to_string(options.chunk_size));
      }
      return cache;
    }
  }
  OCIFS_ASSIGN_OR_RETURN(std::shared_ptr<ChunkCache> cache, Open(options));
  open[name] = cache;
  return cache;
}

ChunkCache::ChunkCache(const ChunkCacheOptions& o, std::unique_ptr<ChunkStore> store,
                       std::unique_ptr<SharedUsage> usage, std::unique_ptr<FetchLeases> leases)
    : dir_(o.dir),
      chunk_size_(o.chunk_size),
      touch_interval_ms_(o.touch_interval_ms),
      max_bytes_(o.max_bytes),
      store_(std::move(store)),
      usage_(std::move(usage)),
      lru_(std::make_unique<LruPolicy>(std::min(kMaxTrackedChunks, 2 * (o.max_bytes / o.chunk_size) + 1024),
                                       int64_t{o.touch_interval_ms} * 1'000'000)),
      reclaimer_(std::make_unique<Reclaimer>(*store_, *usage_, *lru_, o.max_bytes, o.max_bytes / 10 * 9)),
      leases_(std::move(leases)),
      lease_wait_(o.lease_wait_ms),
      track_verified_(o.track_verified) {}

ChunkCache::~ChunkCache() = default;

static Status CheckChunkArgs(std::string_view key, size_t length, uint32_t chunk_size) {
  OCIFS_RETURN_IF_ERROR(ValidateCacheKey(key));
  if (length == 0 || length > chunk_size) {
    return InvalidArgument("chunk cache: chunk length " + std::to_string(length) + " is not 1.." +
                           std::to_string(chunk_size));
  }
  return Status::Ok();
}

void ChunkCache::MarkVerified(std::string_view key, uint64_t index) {
  if (!track_verified_) return;
  std::lock_guard lock(verified_mu_);
  if (verified_.size() >= kMaxVerified) verified_.clear();
  verified_.insert_or_assign(VerifiedKey{CacheKeyHash(key), index}, true);
}

bool ChunkCache::ReadPart(std::string_view key, uint64_t index, size_t length, size_t offset,
                          std::span<uint8_t> out) {
  if (!ValidateCacheKey(key).ok() || length == 0 || length > chunk_size_) return false;
  {
    std::lock_guard lock(verified_mu_);
    if (!verified_.contains(VerifiedKey{CacheKeyHash(key), index})) return false;
  }
  bool touch = lru_->Use(key, index, WallClockNs(), /*written=*/false);
  if (!store_->ReadPart(key, index, length, offset, out, touch)) return false;
  ++hits_;
  return true;
}

bool ChunkCache::LoadFromDisk(std::string_view key, uint64_t index, std::span<uint8_t> out) {
  bool touch = lru_->Use(key, index, WallClockNs(), /*written=*/false);
  switch (store_->Read(key, index, out, touch)) {
    case ChunkStore::ReadOutcome::kHit:
      MarkVerified(key, index);
      return true;
    case ChunkStore::ReadOutcome::kDropped:
      ++corrupt_dropped_;
      usage_->Sub(kChunkHeaderSize + out.size());
      return false;
    case ChunkStore::ReadOutcome::kMiss:
      return false;
  }
  return false;
}

Status ChunkCache::StoreChecked(std::string_view key, uint64_t index, std::span<const uint8_t> data) {
  OCIFS_ASSIGN_OR_RETURN(uint64_t bytes, store_->Write(key, index, data));
  MarkVerified(key, index);
  lru_->Use(key, index, WallClockNs(), /*written=*/true);
  AddUsageAndReclaim(bytes);
  return Status::Ok();
}

void ChunkCache::StoreFetched(std::string_view key, uint64_t index, std::span<const uint8_t> data) {
  Status stored = StoreChecked(key, index, data);
  if (!stored.ok()) spdlog::warn("chunk cache {}: not stored: {}", dir_, stored.ToString());
}

void ChunkCache::AddUsageAndReclaim(uint64_t bytes) {
  usage_->Add(bytes);
  Result<uint64_t> evicted = reclaimer_->MaybeReclaim();
  if (evicted.ok()) {
    evictions_ += *evicted;
  } else {
    spdlog::warn("chunk cache {}: eviction failed: {}", dir_, evicted.status().ToString());
  }
}

void ChunkCache::CountKeptBytes(uint64_t bytes) { AddUsageAndReclaim(bytes); }

Status ChunkCache::Read(std::string_view key, uint64_t index, std::span<uint8_t> out, const FetchFn& fetch) {
  OCIFS_RETURN_IF_ERROR(CheckChunkArgs(key, out.size(), chunk_size_));
  bool joined = false;
  Status st = ReadOnce(key, index, out, fetch, &joined);
  if (st.ok() || !joined || !RetryAfterJoining(st)) return st;
  return ReadOnce(key, index, out, fetch, &joined);  // the fetch it joined failed: ask again, once
}

bool ChunkCache::RetryAfterJoining(const Status& status) { return status.code() == Code::kUnavailable; }

Status ChunkCache::ReadOnce(std::string_view key, uint64_t index, std::span<uint8_t> out, const FetchFn& fetch,
                            bool* joined) {
  if (LoadFromDisk(key, index, out)) {
    ++hits_;
    return Status::Ok();
  }
  ++misses_;
  FlightKey fk{std::string(key), index};
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    std::lock_guard lock(flights_mu_);
    auto [it, inserted] = flights_.try_emplace(fk, nullptr);
    if (inserted) {
      it.value() = std::make_shared<Flight>();
    } else {
      ++it->second->waiters;
    }
    flight = it->second;
    leader = inserted;
  }
  if (leader) {
    Status st = FetchAsLeader(key, index, out, fetch);
    Finish(fk, *flight, st, out);
    return st;
  }
  *joined = true;
  return Await(fk, *flight, out);
}

Status ChunkCache::Await(const FlightKey& fk, Flight& flight, std::span<uint8_t> out) {
  std::unique_lock lock(flight.mu);
  flight.cv.wait(lock, [&] { return flight.done; });
  if (!flight.status.ok()) return flight.status;
  if (flight.data.size() != out.size()) {
    return InvalidArgument("chunk cache: chunk " + std::to_string(fk.index) + " of " + fk.key + " read as " +
                           std::to_string(out.size()) + " and " + std::to_string(flight.data.size()) +
                           " bytes at once");
  }
  std::memcpy(out.data(), flight.data.data(), out.size());
  return Status::Ok();
}

Status ChunkCache::ReadChunks(std::string_view key, uint64_t first, std::span<const std::span<uint8_t>> outs,
                              const FetchRunFn& fetch_run, WorkerPool* helpers) {
  for (const auto& out : outs) OCIFS_RETURN_IF_ERROR(CheckChunkArgs(key, out.size(), chunk_size_));
  const size_t n = outs.size();
  std::vector<std::shared_ptr<Flight>> flights(n);  // set for leader and waiter chunks
  std::vector<uint8_t> leader(n, 0);
  size_t missing = 0;
  for (size_t i = 0; i < n; ++i) {
    if (LoadFromDisk(key, first + i, outs[i])) {
      ++hits_;
    } else {
      ++misses_;
      ++missing;
      flights[i] = nullptr;
      leader[i] = 2;  // to claim
    }
  }
  if (missing == 0) return Status::Ok();
  {
    std::lock_guard lock(flights_mu_);
    for (size_t i = 0; i < n; ++i) {
      if (leader[i] != 2) continue;
      auto [it, inserted] = flights_.try_emplace(FlightKey{std::string(key), first + i}, nullptr);
      if (inserted) {
        it.value() = std::make_shared<Flight>();
      } else {
        ++it->second->waiters;
      }
      flights[i] = it->second;
      leader[i] = inserted ? 1 : 0;
    }
  }
  // Each leader chunk's fetch lease, taken without waiting: a chunk whose
  // lease another process holds (leader 3) is waited for after our own runs,
  // holding no lease then (see fetch_lease.h: no deadlock).
  std::vector<FetchLeases::Lease> leases(leases_ ? n : 0);
  for (size_t i = 0; i < n; ++i) {
    if (leader[i] != 1) continue;
    if (leases_) {
      leases[i] = leases_->TryAcquire(key, first + i);
      if (!leases[i].held()) {
        leader[i] = 3;
        continue;
      }
    }
    // Another process, or a flight that ended since our miss, may have stored it.
    if (LoadFromDisk(key, first + i, outs[i])) {
      Finish(FlightKey{std::string(key), first + i}, *flights[i], Status::Ok(), outs[i]);
      flights[i] = nullptr;
      leader[i] = 0;
      if (leases_) leases[i].Release();
    }
  }
  // Runs of consecutive leader chunks: the first on this thread, the others beside it.
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < n;) {
    if (leader[i] != 1) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && leader[j] == 1) ++j;
    runs.emplace_back(i, j);
    i = j;
  }
  // Every run is fetched (each ends its flights) even when another fails: ParallelFor runs them all.
  auto fetch_one = [&](size_t r) {
    Status one = FetchRun(key, first, runs[r].first, runs[r].second, outs, flights, fetch_run);
    if (leases_) {
      for (size_t i = runs[r].first; i < runs[r].second; ++i) leases[i].Release();
    }
    return one;
  };
  Status st;
  if (helpers != nullptr && runs.size() > 1) {
    st = helpers->ParallelFor(runs.size(), fetch_one);
  } else {
    for (size_t r = 0; r < runs.size(); ++r) {
      Status one = fetch_one(r);
      if (st.ok() && !one.ok()) st = one;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (leader[i] != 3) continue;
    Status one = AwaitLeaseThenFetch(key, first, i, outs, flights, fetch_run);
    if (st.ok() && !one.ok()) st = one;
  }
  for (size_t i = 0; i < n; ++i) {
    if (leader[i] != 0 || !flights[i]) continue;
    Status w = Await(FlightKey{std::string(key), first + i}, *flights[i], outs[i]);
    if (!w.ok() && RetryAfterJoining(w)) {  // the fetch it joined failed: ask again, once
      bool joined = false;
      w = ReadOnce(key, first + i, outs[i], [&](std::span<uint8_t> out) { return fetch_run(first + i, out); },
                   &joined);
    }
    if (st.ok() && !w.ok()) st = w;
  }
  return st;
}

Status ChunkCache::FetchRun(std::string_view key, uint64_t first, size_t begin, size_t end,
                            std::span<const std::span<uint8_t>> outs,
                            std::span<const std::shared_ptr<Flight>> flights, const FetchRunFn& fetch_run) {
  size_t total = 0;
  bool contiguous = true;
  for (size_t i = begin; i < end; ++i) {
    total += outs[i].size();
    if (i > begin && outs[i].data() != outs[i - 1].data() + outs[i - 1].size()) contiguous = false;
  }
  std::unique_ptr<uint8_t[]> temp;  // not zero-filled: fetched into
  std::span<uint8_t> dst;
  if (contiguous) {
    dst = std::span<uint8_t>(outs[begin].data(), total);
  } else {
    temp = std::make_unique_for_overwrite<uint8_t[]>(total);
    dst = std::span<uint8_t>(temp.get(), total);
  }
  Status st = fetch_run(first + begin, dst);
  if (st.ok()) {
    fetched_bytes_ += total;
    size_t at = 0;
    for (size_t i = begin; i < end; ++i) {
      if (!contiguous) std::memcpy(outs[i].data(), temp.get() + at, outs[i].size());
      at += outs[i].size();
      StoreFetched(key, first + i, outs[i]);
    }
  }
  for (size_t i = begin; i < end; ++i) Finish(FlightKey{std::string(key), first + i}, *flights[i], st, outs[i]);
  return st;
}

FetchLeases::Lease ChunkCache::WaitForLease(std::string_view key, uint64_t index) {
  if (!leases_) return {};
  bool waited = false;
  FetchLeases::Lease lease = leases_->Acquire(key, index, lease_wait_, &waited);
  if (waited) {
    ++lease_waits_;
    if (!lease.held()) {
      ++lease_timeouts_;
      spdlog::warn("chunk cache {}: chunk {} of {}: another fetch held its lease for over {} ms; fetching it here",
                   dir_, index, key, lease_wait_.count());
    }
  }
  return lease;
}

Status ChunkCache::AwaitLeaseThenFetch(std::string_view key, uint64_t first, size_t i,
                                       std::span<const std::span<uint8_t>> outs,
                                       std::span<const std::shared_ptr<Flight>> flights,
                                       const FetchRunFn& fetch_run) {
  FetchLeases::Lease lease = WaitForLease(key, first + i);
  if (LoadFromDisk(key, first + i, outs[i])) {
    Finish(FlightKey{std::string(key), first + i}, *flights[i], Status::Ok(), outs[i]);
    return Status::Ok();
  }
  return FetchRun(key, first, i, i + 1, outs, flights, fetch_run);  // ends the flight; the lease after it
}

std::vector<uint64_t> ChunkCache::StoredIndexes(std::string_view key) const {
  if (!ValidateCacheKey(key).ok()) return {};
  return store_->ListIndexes(key);
}

bool ChunkCache::StoredOrInFlight(std::string_view key, uint64_t index) const {
  {
    std::lock_guard lock(flights_mu_);
    if (flights_.contains(FlightKey{std::string(key), index})) return true;
  }
  return store_->Exists(key, index);
}

Result<uint64_t> ChunkCache::FetchMissing(std::string_view key, uint64_t first, std::span<const size_t> lengths,
                                          size_t max_run, const FetchRunFn& fetch_run) {
  for (size_t len : lengths) OCIFS_RETURN_IF_ERROR(CheckChunkArgs(key, len, chunk_size_));
  if (max_run == 0) max_run = 1;
  uint64_t fetched = 0;
  for (size_t i = 0; i < lengths.size();) {
    // Claim up to max_run consecutive chunks that are neither stored nor in flight.
    std::vector<std::shared_ptr<Flight>> flights;
    std::vector<FetchLeases::Lease> leases;  // held until the run is stored
    {
      std::lock_guard lock(flights_mu_);
      while (i < lengths.size() && flights.size() < max_run) {
        // A chunk whose lease another process holds is being fetched there: skipped like one in flight.
        FetchLeases::Lease lease;
        bool skip = flights_.contains(FlightKey{std::string(key), first + i});
        if (!skip && leases_) {
          lease = leases_->TryAcquire(key, first + i);
          skip = !lease.held();
        }
        if (skip || store_->Exists(key, first + i)) {
          if (!flights.empty()) break;  // the run ends here
          ++i;
          continue;
        }
        leases.push_back(std::move(lease));
        auto flight = std::make_shared<Flight>();
        flights_.emplace(FlightKey{std::string(key), first + i}, flight);
        flights.push_back(std::move(flight));
        ++i;
      }
    }
    if (flights.empty()) continue;
    const size_t count = flights.size();
    const size_t begin = i - count;
    size_t total = 0;
    for (size_t k = begin; k < i; ++k) total += lengths[k];
    // Not zero-filled: every byte is fetched into (or the run fails).
    auto buf = std::make_unique_for_overwrite<uint8_t[]>(total);
    std::vector<std::span<uint8_t>> outs;
    size_t at = 0;
    for (size_t k = begin; k < i; ++k) {
      outs.emplace_back(buf.get() + at, lengths[k]);
      at += lengths[k];
    }
    Status st = FetchRun(key, first + begin, 0, count, outs, flights, fetch_run);
    if (!st.ok()) return st;
    fetched += count;
  }
  return fetched;
}

Result<uint64_t> ChunkCache::StreamChunks(std::string_view key, uint64_t first, std::span<const size_t> lengths,
                                          size_t claim_ahead, const StreamFn& stream,
                                          const std::function<uint64_t()>& claimable) {
  for (size_t len : lengths) OCIFS_RETURN_IF_ERROR(CheckChunkArgs(key, len, chunk_size_));
  return ChunkStream(*this, key, first, lengths, claim_ahead, claimable).Run(stream);
}

Status ChunkCache::FetchAsLeader(std::string_view key, uint64_t index, std::span<uint8_t> out,
                                 const FetchFn& fetch) {
  // Another process, or a flight that ended since our miss, may have stored it.
  if (LoadFromDisk(key, index, out)) return Status::Ok();
  // Held until the chunk is stored: another process's miss then finds it on disk.
  FetchLeases::Lease lease = WaitForLease(key, index);
  if (leases_ && LoadFromDisk(key, index, out)) return Status::Ok();
  Status st = fetch(out);
  if (!st.ok()) return st;
  fetched_bytes_ += out.size();
  StoreFetched(key, index, out);
  return Status::Ok();
}

void ChunkCache::Finish(const FlightKey& fk, Flight& flight, const Status& status,
                        std::span<const uint8_t> data) {
  size_t waiters = 0;
  {
    std::lock_guard lock(flights_mu_);
    flights_.erase(fk);
    waiters = flight.waiters;  // final: no one can join an unregistered flight
  }
  if (waiters > 0 && status.ok()) flight.data.assign(data.begin(), data.end());
  {
    std::lock_guard lock(flight.mu);
    flight.status = status;
    flight.done = true;
  }
  flight.cv.notify_all();
}

Result<bool> ChunkCache::Lookup(std::string_view key, uint64_t index, std::span<uint8_t> out) {
  OCIFS_RETURN_IF_ERROR(CheckChunkArgs(key, out.size(), chunk_size_));
  bool hit = LoadFromDisk(key, index, out);
  ++(hit ? hits_ : misses_);
  return hit;
}

Status ChunkCache::Store(std::string_view key, uint64_t index, std::span<const uint8_t> data) {
  OCIFS_RETURN_IF_ERROR(CheckChunkArgs(key, data.size(), chunk_size_));
  return StoreChecked(key, index, data);
}

std::string ChunkCache::SidePath(std::string_view key, std::string_view suffix) const {
  if (!ValidateCacheKey(key).ok() || !ValidateSideSuffix(suffix).ok()) return {};
  return store_->SidePath(key, suffix);
}

std::string ChunkCache::LeasePath(std::string_view key, std::string_view suffix) const {
  if (!leases_ || !ValidateCacheKey(key).ok() || !ValidateSideSuffix(suffix).ok()) return {};
  return dir_ + "/leases/" + std::string(key) + "." + std::string(suffix);
}

std::string ChunkCache::KeptPath(std::string_view key) const {
  if (!ValidateCacheKey(key).ok()) return {};
  return store_->KeptPath(key);
}

uint64_t ChunkCache::used_bytes() const { return usage_->Get(); }

ChunkCacheStats ChunkCache::stats() const {
  return {hits_.load(),           misses_.load(),      fetched_bytes_.load(),  evictions_.load(),
          corrupt_dropped_.load(), lease_waits_.load(), lease_timeouts_.load()};
}

}  // namespace ocifs
