#include "csi/mount_health.h"

#include <chrono>

#include "fuse/mount_state.h"

namespace ocifs {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string PublishedStateDir() { return MountStateDir(); }

PublishedMount ReadPublished(const std::string& state_dir, const std::string& target, int64_t now_ms) {
  PublishedMount out;
  auto sum = SumMountStats(LoadMountStats(state_dir, target));
  if (sum.ok()) out.stats = std::move(sum).value();
  auto state = LoadMountState(MountStatePath(state_dir, target, ".json"));
  if (state.ok()) out.takeovers = state->takeovers;
  JudgePublished(&out, now_ms);
  return out;
}

void JudgePublished(PublishedMount* published, int64_t now_ms) {
  published->state.clear();
  published->problem.clear();
  if (!published->stats) return;
  const MountStats& s = *published->stats;
  if (now_ms - s.updated_ms > kStalledAfterMs) {
    published->state = "stalled";
    published->problem = "stalled: its serving process (pid " + std::to_string(s.pid) +
                         ") has not published its counters for " + std::to_string((now_ms - s.updated_ms) / 1000) +
                         " s (stopped, or every thread is stuck)";
    return;
  }
  if (s.last_read_error_ms > 0 && now_ms - s.last_read_error_ms <= kFailingForMs) {
    published->state = "failing";
    published->problem = "reads fail: " + std::to_string(s.fuse_read_errors) + " of " + std::to_string(s.fuse_reads) +
                         " FUSE reads failed, the last " + std::to_string((now_ms - s.last_read_error_ms) / 1000) +
                         " s ago: " + s.last_read_error;
  }
}

}  // namespace ocifs
