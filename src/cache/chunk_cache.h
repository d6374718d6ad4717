// ChunkCache: fixed-size chunks of immutable blobs, cached on local disk in a
// directory shared by every process on the machine, bounded by LRU eviction,
// and crash-safe (docs/cache-format.md).
//
// The glue of four parts, each in its own file:
//   ChunkStore   the files: layout, atomic writes, checked reads (storage)
//   LruPolicy    recency and the choice of victims (policy)
//   SharedUsage  the usage counter and lock shared between processes
//   Reclaimer    eviction under the lock (reclaim)
// and ChunkStream, one StreamChunks call (a run of chunks by one stream).
// plus single-flight: concurrent misses of one chunk in this process share one
// fetch, and FetchLeases extends that to every process sharing the dir.
//
// Thread safety: safe for concurrent use by any number of threads, and by any
// number of processes opening the same dir. No lock is held during I/O; a
// missing chunk's waiters block only on that chunk's fetch.
// Lock order: flights_mu_ and a Flight's mu are never held together; the
// Reclaimer's locks are taken with neither held.
// Units: bytes; chunk `index` covers blob bytes [index * chunk_size, +chunk_size).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tsl/robin_map.h>

#include "base/worker_pool.h"
#include "cache/fetch_lease.h"
#include "ocifs/status.h"

namespace ocifs {

class ChunkStore;
class LruPolicy;
class Reclaimer;
class SharedUsage;

struct ChunkCacheOptions {
  std::string dir;                   // created if missing (mode 0700)
  uint64_t max_bytes = 10ull << 30;  // bound on chunk files on disk (header + data), >= 2 chunks
  uint32_t chunk_size = 1u << 20;    // bytes per chunk: a power of two, 64 KiB..16 MiB
  // A hit refreshes the chunk file's mtime (the recency other processes see)
  // at most once per this interval per chunk.
  uint32_t touch_interval_ms = 30'000;
  // fdatasync each chunk before its rename. Off by default: the CRCs already
  // keep torn files from being served after a power loss (see the doc).
  bool fsync = false;
  // Remember which chunks this process has checked, so ReadPart can serve
  // them (up to 65,536 chunks, ~2 MiB). Off for a cache that never calls
  // ReadPart (its ReadPart then always returns false).
  bool track_verified = true;
  // Scan the directory at open (correct the usage counter, evict if over the
  // bound, remove a crashed writer's temp files). A process that has just
  // opened the same directory with another chunk size may skip it: the scan
  // covers every chunk size.
  bool scan_at_open = true;
  // Cross-process single flight (FetchLeases, docs/cache-format.md "Fetch
  // leases"): a miss whose chunk another process is fetching waits up to this
  // long for that fetch, then reads the chunk from disk (fetching it itself
  // only if it is still missing). 0: no leases (each process fetches its misses).
  uint32_t lease_wait_ms = 20'000;
};

struct ChunkCacheStats {
  uint64_t hits = 0;             // Read/Lookup calls served from disk
  uint64_t misses = 0;           // Read/Lookup calls that found no usable file
  uint64_t fetched_bytes = 0;    // bytes returned by successful fetch callbacks
  uint64_t evictions = 0;        // chunk files this process evicted
  uint64_t corrupt_dropped = 0;  // chunk files that failed a check and were unlinked
  uint64_t lease_waits = 0;      // misses that waited for another process's (or cache's) fetch lease
  uint64_t lease_timeouts = 0;   // of those, waits that gave up after lease_wait_ms
};

class ChunkCache {
 public:
  // Checks the options, creates the layout and, with scan_at_open, removes a
  // crashed writer's temp files (older than a minute), counts the usage and
  // evicts if over the bound.
  [[nodiscard]] static Result<std::shared_ptr<ChunkCache>> Open(const ChunkCacheOptions& options);
  // The process's one ChunkCache of options.dir: the one already open (while
  // anyone holds it), else Open(options). kInvalidArgument if the open one
  // has another chunk size. What the read path uses; Open is for tests that
  // play several processes.
  [[nodiscard]] static Result<std::shared_ptr<ChunkCache>> OpenShared(const ChunkCacheOptions& options);
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  uint32_t chunk_size() const { return chunk_size_; }
  // Whether ChunkCacheOptions::chunk_size may be `bytes`: a power of two in 64 KiB..16 MiB.
  static bool ValidChunkSize(uint64_t bytes) {
    return bytes >= (64u << 10) && bytes <= (16u << 20) && (bytes & (bytes - 1)) == 0;
  }
  const std::string& dir() const { return dir_; }

  using FetchFn = std::function<Status(std::span<uint8_t>)>;
  // Copies chunk `index` of blob `key` into out; out.size() is that chunk's
  // length (chunk_size; the blob's last chunk shorter). On a miss calls
  // fetch(out), which must fill all of out, stores the result and returns it.
  // Concurrent callers for the same missing chunk in this process wait for one
  // fetch; a failed fetch is not stored, and a caller that joined it (rather
  // than started it) asks again once if it failed kUnavailable: the fetch may
  // have begun in a registry outage that has ended since (right after a
  // failure the registry layer keeps that second ask short,
  // registry/pull_endpoints.h). Other failures are returned to all of them. A caller
  // in another process sharing the dir waits on the chunk's fetch lease
  // (FetchLeases, up to lease_wait_ms) and then reads what this one stored. A failure
  // to store is logged, not returned. On error out's content is unspecified.
  // kInvalidArgument: bad key (see cache_key.h) or out.size() not 1..chunk_size.
  [[nodiscard]] Status Read(std::string_view key, uint64_t index, std::span<uint8_t> out,
                            const FetchFn& fetch);
  // Fills `out` with the blob's bytes from chunk first_index on: out covers
  // consecutive whole chunks (the blob's last one may be short).
  using FetchRunFn = std::function<Status(uint64_t first_index, std::span<uint8_t> out)>;
  // Read for the consecutive chunks [first, first + outs.size()): outs[i]
  // receives chunk first + i (its whole length, as Read's out). Hits come
  // from disk; chunks another flight of this process is fetching are waited
  // for (and asked again once, as Read, if that flight fails kUnavailable); chunks whose fetch lease another process holds are waited for after
  // this call's own fetches, one at a time, then read from disk (or fetched
  // if still missing); the other misses are fetched by this call, each maximal run of
  // consecutive ones with ONE fetch_run call (one HTTP range); with
  // `helpers`, the runs are spread over the caller and the pool's idle
  // threads (non-adjacent runs in parallel), else fetched one after another.
  // A run whose outs lie back to back in memory is fetched straight into
  // them. Returns the first error (outs then unspecified); every chunk this
  // call fetched is stored or its waiters given the error.
  [[nodiscard]] Status ReadChunks(std::string_view key, uint64_t first, std::span<const std::span<uint8_t>> outs,
                                  const FetchRunFn& fetch_run, WorkerPool* helpers = nullptr);
  // For read-ahead: fetches and stores those of the chunks [first, first +
  // lengths.size()) (lengths[i]: chunk first + i's length) that are neither
  // on disk nor being fetched by a flight of this process or under another
  // process's fetch lease (never waits for one), in runs of at most
  // max_run consecutive chunks with one fetch_run each, one after another on
  // the calling thread. Readers of those chunks meanwhile wait for these
  // flights. Counts neither hits nor misses. Returns the number of chunks
  // fetched, or the first fetch error (after handing it to the waiters).
  [[nodiscard]] Result<uint64_t> FetchMissing(std::string_view key, uint64_t first, std::span<const size_t> lengths,
                                              size_t max_run, const FetchRunFn& fetch_run);
  // A stream's consumer: bytes [at, at + bytes.size()) of the streamed range
  // (`at` may go back: bytes seen before come again after a retry); false stops it.
  using StreamConsumer = std::function<bool(uint64_t at, std::span<const uint8_t> bytes)>;
  // Streams `bytes` bytes of the blob from chunk first_index's start to `consume`.
  using StreamFn = std::function<Status(uint64_t first_index, uint64_t bytes, const StreamConsumer& consume)>;
  // For a stream (a first pass reading a whole blob): the chunks [first,
  // first + lengths.size()) with ONE `stream` call for their bytes (one HTTP
  // range), each chunk stored, and its waiters handed it, as soon as its
  // bytes are in. A chunk is claimed (a flight readers wait for, and its
  // fetch lease) when the stream comes within `claim_ahead` chunks of it; one
  // on disk, in flight or leased elsewhere by then is skipped (its bytes
  // dropped); when `claim_ahead` chunks in a row are skipped the stream stops
  // and a new one starts at the next chunk claimed. With `claimable`, no
  // chunk at or past the index it returns now is claimed (a paced stream's:
  // their bytes may be long in coming, and a reader of them should not wait);
  // if no chunk can be claimed before it, the call ends (OK). Counts neither
  // hits nor misses. Returns the chunks stored, or the stream's error once the
  // claimed chunks' waiters were handed kUnavailable (so they ask again, as Read's).
  [[nodiscard]] Result<uint64_t> StreamChunks(std::string_view key, uint64_t first, std::span<const size_t> lengths,
                                              size_t claim_ahead, const StreamFn& stream,
                                              const std::function<uint64_t()>& claimable = nullptr);
  // The hit path of a partial read: copies bytes [offset, offset + out.size())
  // of chunk `index` (of `length` bytes) if this process has read or written
  // that chunk whole since it was last seen missing (so its CRC was checked),
  // reading only those bytes; false otherwise (then use Read). Counts a hit.
  [[nodiscard]] bool ReadPart(std::string_view key, uint64_t index, size_t length, size_t offset,
                              std::span<uint8_t> out);
  // Whether chunk `index` of `key` is on disk or being fetched by a flight of
  // this process. A hint: either may change right after.
  bool StoredOrInFlight(std::string_view key, uint64_t index) const;
  // The chunks of `key` on disk now, as listed by one readdir (a snapshot:
  // other processes may add or evict chunks right after). Invalid key: empty.
  std::vector<uint64_t> StoredIndexes(std::string_view key) const;
  // Counts a miss its caller served around the cache (`bytes` fetched for it).
  void CountBypassedMiss(uint64_t bytes) {
    misses_ += 1;
    fetched_bytes_ += bytes;
  }
  // Like Read without a fetch: true and out filled on a hit; false on a miss
  // (out's content then unspecified).
  [[nodiscard]] Result<bool> Lookup(std::string_view key, uint64_t index, std::span<uint8_t> out);
  // Stores a chunk (atomically replacing any), then evicts if over the bound.
  [[nodiscard]] Status Store(std::string_view key, uint64_t index, std::span<const uint8_t> data);

  // dir/side/<key>.<suffix>, e.g. SidePath("sha256:ab..", "gzidx"); its parent
  // exists. Empty if key or suffix is invalid (suffix: 1..32 of [a-z0-9-]).
  // Side files are the caller's to write (temp + rename) and are neither
  // counted in max_bytes nor evicted: they are small next to the chunks and
  // expensive to rebuild (a gzip index costs a read of the whole blob).
  std::string SidePath(std::string_view key, std::string_view suffix) const;

  // dir/leases/<key>.<suffix>: a lease file for work on a blob other than
  // chunk fetches (TryLockFile, base/file_lock.h; docs/cache-format.md "Fetch
  // leases"), e.g. LeasePath(digest, "gzpass"). Empty if key or suffix is
  // invalid or the cache has no leases (lease_wait_ms == 0).
  std::string LeasePath(std::string_view key, std::string_view suffix) const;

  // dir/kept/<key>: the file of a KeptPieceFile (decompressed pieces of one
  // disk, docs/cache-format.md "Kept pieces"); its parent exists. Counted in
  // max_bytes by its allocated blocks and evicted whole, like a chunk file.
  // Empty if key is invalid.
  std::string KeptPath(std::string_view key) const;
  // Adds `bytes` just allocated in a kept-piece file to the shared usage,
  // then evicts if over the bound (which may evict that file).
  void CountKeptBytes(uint64_t bytes);
  uint32_t touch_interval_ms() const { return touch_interval_ms_; }

  ChunkCacheStats stats() const;
  // Bytes the directory's files take now, by the usage counter every process
  // of the directory shares; and the bound this handle was opened with.
  uint64_t used_bytes() const;
  uint64_t max_bytes() const { return max_bytes_; }

 private:
  friend class ChunkStream;  // StreamChunks's run: claims flights and stores (chunk_stream.h)

  // One fetch in progress; shared by its leader and waiters.
  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;           // guarded by mu
    Status status;               // guarded by mu; written before done
    std::vector<uint8_t> data;   // written by the leader before done, when waiters > 0
    size_t waiters = 0;          // guarded by ChunkCache::flights_mu_
  };
  struct FlightKey {
    std::string key;
    uint64_t index;
    bool operator==(const FlightKey&) const = default;
  };
  struct FlightKeyHash {
    size_t operator()(const FlightKey& k) const {
      return std::hash<std::string>{}(k.key) ^ (k.index * 0x9e3779b97f4a7c15ull);
    }
  };

  ChunkCache(const ChunkCacheOptions& options, std::unique_ptr<ChunkStore> store,
             std::unique_ptr<SharedUsage> usage, std::unique_ptr<FetchLeases> leases);
  // Read without the second ask; *joined: the result is that of another caller's fetch.
  Status ReadOnce(std::string_view key, uint64_t index, std::span<uint8_t> out, const FetchFn& fetch, bool* joined);
  // Whether a failure of a fetch that a caller joined is worth asking again (kUnavailable).
  static bool RetryAfterJoining(const Status& status);
  // A checked read from disk with recency bookkeeping; no stats.
  bool LoadFromDisk(std::string_view key, uint64_t index, std::span<uint8_t> out);
  Status StoreChecked(std::string_view key, uint64_t index, std::span<const uint8_t> data);
  // StoreChecked for a chunk this process fetched: a failure is logged, not
  // returned (its readers have the bytes; the next miss fetches it again).
  void StoreFetched(std::string_view key, uint64_t index, std::span<const uint8_t> data);
  // usage += bytes, then evicts if over the bound.
  void AddUsageAndReclaim(uint64_t bytes);
  Status FetchAsLeader(std::string_view key, uint64_t index, std::span<uint8_t> out, const FetchFn& fetch);
  // Fetches leader chunks [begin, end) of a ReadChunks/FetchMissing call with
  // one fetch_run, stores them and ends their flights.
  Status FetchRun(std::string_view key, uint64_t first, size_t begin, size_t end,
                  std::span<const std::span<uint8_t>> outs, std::span<const std::shared_ptr<Flight>> flights,
                  const FetchRunFn& fetch_run);
  // Fetches chunk first + i of a ReadChunks call whose lease another process
  // held: waits for the lease, then reads the chunk from disk, or fetches it
  // (a run of one) if it is still missing. Ends the chunk's flight.
  Status AwaitLeaseThenFetch(std::string_view key, uint64_t first, size_t i, std::span<const std::span<uint8_t>> outs,
                             std::span<const std::shared_ptr<Flight>> flights, const FetchRunFn& fetch_run);
  // Waits for the lease of a chunk (counting the wait); unheld without leases.
  FetchLeases::Lease WaitForLease(std::string_view key, uint64_t index);
  // Waits for a flight led by another caller and copies its chunk into out.
  Status Await(const FlightKey& fk, Flight& flight, std::span<uint8_t> out);
  // Ends the flight: unregisters it, hands waiters the status (and the data).
  void Finish(const FlightKey& fk, Flight& flight, const Status& status, std::span<const uint8_t> data);

  const std::string dir_;
  const uint32_t chunk_size_;
  const uint32_t touch_interval_ms_;
  const uint64_t max_bytes_;
  const std::unique_ptr<ChunkStore> store_;
  const std::unique_ptr<SharedUsage> usage_;
  const std::unique_ptr<LruPolicy> lru_;
  const std::unique_ptr<Reclaimer> reclaimer_;
  const std::unique_ptr<FetchLeases> leases_;  // null: lease_wait_ms == 0
  const std::chrono::milliseconds lease_wait_;

  mutable std::mutex flights_mu_;
  tsl::robin_map<FlightKey, std::shared_ptr<Flight>, FlightKeyHash> flights_;  // guarded by flights_mu_

  // Chunks read whole and checked, or written, by this process: ReadPart may
  // skip their CRC. Named by key hash (CacheKeyHash) and index: 16 bytes
  // each, no allocation on the hit path (two keys of one hash would only
  // share a skipped CRC). Bounded: cleared when it reaches kMaxVerified.
  struct VerifiedKey {
    uint64_t key_hash;
    uint64_t index;
    bool operator==(const VerifiedKey&) const = default;
  };
  struct VerifiedKeyHash {
    size_t operator()(const VerifiedKey& k) const { return k.key_hash ^ (k.index * 0x9e3779b97f4a7c15ull); }
  };
  static constexpr size_t kMaxVerified = 1u << 16;
  const bool track_verified_;
  std::mutex verified_mu_;  // leaf lock
  tsl::robin_map<VerifiedKey, bool, VerifiedKeyHash> verified_;  // guarded by verified_mu_
  void MarkVerified(std::string_view key, uint64_t index);

  std::atomic<uint64_t> hits_{0}, misses_{0}, fetched_bytes_{0}, evictions_{0}, corrupt_dropped_{0};
  std::atomic<uint64_t> lease_waits_{0}, lease_timeouts_{0};
};

}  // namespace ocifs
