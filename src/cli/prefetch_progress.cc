#include "cli/prefetch_progress.h"

#include <algorithm>
#include <string>
#include <vector>

#include "cli/mount_stats_publisher.h"

namespace ocifs {

PrefetchProgress::PrefetchProgress(std::shared_ptr<Scheduler> scheduler, const ImageStack& stack, FILE* out, int tty)
    : stack_(stack),
      out_(out),
      printer_("prefetching layers", "oci-fs mount: prefetch", /*lines=*/true, out, tty),
      tasks_(std::move(scheduler), "prefetch progress") {
  Tick();
}

PrefetchProgress::~PrefetchProgress() {
  tasks_.Cancel();
  tasks_.Wait();
}

std::pair<uint64_t, uint64_t> PrefetchProgress::Count(const ImageStack& stack) {
  const std::vector<LayerCacheStats> counted = CountCachedLayers(stack);
  const std::vector<LayerView>& layers = stack.layers();
  uint64_t done = 0, total = 0;
  for (size_t i = 0; i < counted.size() && i < layers.size(); ++i) {
    if (!layers[i].cached) continue;
    const std::vector<std::string> names = layers[i].cached->StrategyNames();
    if (std::find(names.begin(), names.end(), "prefetch-all") == names.end()) continue;
    const LayerCacheStats& l = counted[i];
    const uint64_t chunk = stack.cache()->chunk_size();  // counted is empty without a cache
    total += l.size;
    done += l.cached_chunks == l.chunks ? l.size : std::min(l.size, l.cached_chunks * chunk);
  }
  return {done, total};
}

void PrefetchProgress::Tick() {
  tasks_.Post(TaskClass::kHousekeeping, [this] {
    const auto [done, total] = Count(stack_);
    if (total == 0) return;  // nothing is filled in the background: no progress to show
    printer_.Report(done, total);
    if (done < total) {
      Tick();
      return;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    printer_.EndBar();
    std::fprintf(out_, "oci-fs mount: prefetched %.1f MiB in %.1f s\n", static_cast<double>(total) / (1 << 20),
                 seconds);
    std::fflush(out_);
  }, Scheduler::Clock::now() + std::chrono::seconds(1));
}

}  // namespace ocifs
