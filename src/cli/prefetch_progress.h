// PrefetchProgress: how far `oci-fs mount -f --prefetch-all` got, on the
// foreground mount's stderr (docs/cli.md): a bar redrawn in place on a
// terminal, else a line every 5 s (ProgressPrinter), and once every chunk of
// every layer the background fill fetches is in the cache, one line
// "oci-fs mount: prefetched N MiB in S s". Nothing more after that line.
//
// The numbers are those the mount publishes (mount_stats_publisher.h's
// CountCachedLayers: a listing of the cache directory per layer), taken
// every second by a housekeeping task of the mount's scheduler. Chunks a
// read or another mount fetched count too: the bar is what is cached, not
// what this process fetched. A cache smaller than the layers may evict
// chunks before the fill ends: then the end line never comes.
//
// Thread safety: constructed and destroyed on one thread; its task runs on
// the scheduler, one tick at a time. Lifetime: borrows the stack, which must
// outlive it; destroy it before the scheduler stops.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <utility>

#include "cli/progress_printer.h"
#include "sched/task_group.h"
#include "stack/image_stack.h"

namespace ocifs {

class PrefetchProgress {
 public:
  // `out` and `tty` are for tests (ProgressPrinter's).
  PrefetchProgress(std::shared_ptr<Scheduler> scheduler, const ImageStack& stack, FILE* out = stderr, int tty = -1);
  ~PrefetchProgress();
  PrefetchProgress(const PrefetchProgress&) = delete;
  PrefetchProgress& operator=(const PrefetchProgress&) = delete;

  // (bytes cached, bytes in all) of the layers whose blob the background
  // fill fetches; (0, 0) when none does (no cache dir, or one too small).
  static std::pair<uint64_t, uint64_t> Count(const ImageStack& stack);

 private:
  void Tick();

  const ImageStack& stack_;
  FILE* const out_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  ProgressPrinter printer_;  // touched by one tick at a time
  TaskGroup tasks_;          // last: cancelled and waited for first
};

}  // namespace ocifs
