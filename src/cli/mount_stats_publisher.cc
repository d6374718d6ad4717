#include "cli/mount_stats_publisher.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <tuple>

#include "registry/fetch_stats.h"
#include "fuse/fuse_server.h"

namespace ocifs {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::vector<LayerCacheStats> CountCachedLayers(const ImageStack& stack) {
  std::vector<LayerCacheStats> out;
  const auto& cache = stack.cache();
  if (!cache) return out;
  const uint64_t chunk = cache->chunk_size();
  for (const LayerView& layer : stack.layers()) {
    LayerCacheStats l;
    l.digest = layer.descriptor.digest;
    l.size = layer.descriptor.size;
    l.chunks = (l.size + chunk - 1) / chunk;
    for (uint64_t index : cache->StoredIndexes(l.digest)) l.cached_chunks += index < l.chunks ? 1 : 0;
    out.push_back(std::move(l));
  }
  return out;
}

MountStatsPublisher::MountStatsPublisher(std::shared_ptr<Scheduler> scheduler, std::string dir,
                                         std::string mountpoint, std::string reference, bool prefetch_all,
                                         const ImageStack& stack)
    : dir_(std::move(dir)), stack_(stack), tasks_(std::move(scheduler), "mount stats") {
  base_.pid = ::getpid();
  base_.started_ms = NowMs();
  base_.mountpoint = std::move(mountpoint);
  base_.reference = std::move(reference);
  base_.registry = stack.image().reference.registry;
  base_.accel = !stack.accel().artifact.empty();
  base_.prefetch_all = prefetch_all;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  Write(/*count_layers=*/true);
  Tick();
}

MountStatsPublisher::~MountStatsPublisher() {
  tasks_.Cancel();
  tasks_.Wait();
  Write(/*count_layers=*/true);
}

MountStats MountStatsPublisher::Collect(bool count_layers) {
  MountStats s = base_;
  s.updated_ms = NowMs();
  const FuseReadStats& fuse = GlobalFuseReadStats();
  s.fuse_reads = fuse.reads.load();
  s.fuse_read_errors = fuse.read_errors.load();
  s.fuse_read_bytes = fuse.read_bytes.load();
  s.fuse_read_latency = fuse.latency.Snapshot();
  std::tie(s.last_read_error, s.last_read_error_ms) = fuse.LastError();
  const FetchStats& fetch = GlobalFetchStats();
  s.blob_requests = fetch.blob_requests.load();
  s.blob_bytes = fetch.blob_bytes.load();
  s.blob_fetches = fetch.blob_fetches.load();
  s.blob_fetch_errors = fetch.blob_fetch_errors.load();
  s.manifest_requests = fetch.manifest_requests.load();
  s.fetch_latency = fetch.fetch_latency.Snapshot();
  if (const auto& cache = stack_.cache()) {
    ChunkCacheStats c = cache->stats();
    s.cache = true;
    s.cache_hits = c.hits;
    s.cache_misses = c.misses;
    s.cache_evictions = c.evictions;
    s.cache_corrupt_dropped = c.corrupt_dropped;
    s.cache_used_bytes = cache->used_bytes();
    s.cache_bound_bytes = cache->max_bytes();
    ImageStack::ClusterCacheStats clusters = stack_.cluster_cache_stats();
    s.cluster_cache_hits = clusters.hits;
    s.cluster_cache_dropped = clusters.dropped;
    if (count_layers) {
      s.layers = CountCachedLayers(stack_);
      base_.layers = s.layers;
    }
  }
  return s;
}

void MountStatsPublisher::Write(bool count_layers) {
  Status saved = SaveMountStats(dir_, Collect(count_layers));
  if (!saved.ok() && !warned_) {
    warned_ = true;  // once: the mount serves on without its stats
    spdlog::warn("cannot publish the mount's counters: {}", saved.ToString());
  }
}

void MountStatsPublisher::Tick() {
  tasks_.Post(TaskClass::kHousekeeping, [this] {
    Write(++ticks_ % 5 == 0);
    Tick();
  }, Scheduler::Clock::now() + std::chrono::seconds(1));
}

}  // namespace ocifs
