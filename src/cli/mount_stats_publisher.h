// MountStatsPublisher: a serving process's counters, published every second
// to its own stats file (fuse/mount_stats.h, docs/mount-stats-format.md) as a
// housekeeping task of the mount's scheduler, and once more when it is
// destroyed (the process's last numbers, for the sum over its successors).
//
// Where the numbers live: the registry's FetchStats and the FUSE server's
// FuseReadStats (process-wide), the stack's chunk cache and cluster cache.
// What is cached of each layer is counted from the cache directory every
// fifth tick (a directory listing per layer).
//
// Thread safety: constructed and destroyed on one thread; its task runs on
// the scheduler, one tick at a time. Lifetime: borrows the stack, which must
// outlive it; destroy it before the scheduler stops.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fuse/mount_stats.h"
#include "sched/task_group.h"
#include "stack/image_stack.h"

namespace ocifs {

// What is stored in the stack's cache of each layer blob (a directory
// listing per layer); empty without a cache. Thread-safe.
std::vector<LayerCacheStats> CountCachedLayers(const ImageStack& stack);

class MountStatsPublisher {
 public:
  MountStatsPublisher(std::shared_ptr<Scheduler> scheduler, std::string dir, std::string mountpoint,
                      std::string reference, bool prefetch_all, const ImageStack& stack);
  ~MountStatsPublisher();
  MountStatsPublisher(const MountStatsPublisher&) = delete;
  MountStatsPublisher& operator=(const MountStatsPublisher&) = delete;

  // The numbers now (what the next tick writes); `count_layers` also lists
  // the cache directory for what is stored of each layer.
  MountStats Collect(bool count_layers);

 private:
  void Tick();
  void Write(bool count_layers);

  const std::string dir_;
  const ImageStack& stack_;
  MountStats base_;  // identity fields and the last layer counts; touched by one tick at a time
  int ticks_ = 0;
  bool warned_ = false;
  TaskGroup tasks_;  // last: cancelled and waited for first
};

}  // namespace ocifs
