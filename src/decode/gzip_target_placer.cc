#include "decode/gzip_target_placer.h"

#include <algorithm>

namespace ocifs {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// The points of `sorted`'s ranges merged by `gap`, a point every `spacing`
// inside each; stops once it has more than `limit` (Plan then widens both).
// Offsets may be anywhere up to 2^64: no sum here wraps.
std::vector<GzipTargetPlacer::Point> PointsOf(const Ranges& sorted, uint64_t gap, uint64_t spacing, size_t limit) {
  Ranges merged;
  for (const auto& [first, second] : sorted) {
    if (!merged.empty() && (first < merged.back().second || first - merged.back().second < gap)) {
      merged.back().second = std::max(merged.back().second, second);
    } else {
      merged.emplace_back(first, second);
    }
  }
  std::vector<GzipTargetPlacer::Point> points;
  for (const auto& [first, second] : merged) {
    for (uint64_t at = first;; at += spacing) {  // first < second
      points.push_back({at, false});
      if (points.size() > limit) return points;
      if (second - at <= spacing) break;
    }
    points.push_back({second, true});
  }
  return points;
}

}  // namespace

std::vector<GzipTargetPlacer::Point> GzipTargetPlacer::Plan(Ranges ranges, uint64_t gap, size_t budget,
                                                            uint64_t spacing) {
  if (budget == 0) return {};
  std::erase_if(ranges, [](const auto& r) { return r.second <= r.first; });
  std::sort(ranges.begin(), ranges.end());
  gap = std::max<uint64_t>(gap, 1);
  spacing = spacing == 0 ? gap : spacing;
  std::vector<Point> points = PointsOf(ranges, gap, spacing, budget);
  while (points.size() > budget && gap < (uint64_t{1} << 50)) {
    gap *= 2;
    spacing = spacing > UINT64_MAX / 2 ? UINT64_MAX : spacing * 2;
    points = PointsOf(ranges, gap, spacing, budget);
  }
  if (points.size() > budget) points.resize(budget);
  return points;
}

GzipTargetPlacer::GzipTargetPlacer(std::vector<Point> planned, const Limits& limits)
    : points_(std::move(planned)), limits_(limits) {}

void GzipTargetPlacer::Recorded(uint64_t out, uint64_t in) {
  recorded_ = true;
  last_out_ = out;
  last_in_ = in;
}

const GzipTargetPlacer::Recent& GzipTargetPlacer::BeforeTarget(uint64_t target) const {
  const uint64_t align = std::max<uint64_t>(limits_.align, 1);
  // The output at `target` is past the newest restart point's by at least
  // what the compressed bytes between them make: deflate makes at least
  // about a byte of output per byte of input past a block's header (stored
  // blocks exactly one; codes of incompressible bytes take about 8 bits), so
  // 9/10 of them, less 256 for a header, is a lower bound. A read of the
  // target's bytes verifies from that output's block start.
  const GzipCheckpoint& newest = recent_.back().at;
  const uint64_t made = target > newest.in ? (target - newest.in) / 10 * 9 : 0;
  const uint64_t block_start = (newest.out + (made > 256 ? made - 256 : 0)) / align * align;
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it) {
    if (it->at.out <= block_start) return *it;
  }
  return recent_.front();
}

bool GzipTargetPlacer::Place(const Recent& r, std::vector<GzipCheckpoint>& out) {
  if (placed_ >= limits_.budget) exhausted_ = true;
  if (exhausted_ || (recorded_ && r.at.out <= last_out_)) return false;
  GzipCheckpoint cp = r.at;
  if (!r.window.empty()) {
    cp.window_size = static_cast<uint32_t>(r.window.size());
    cp.zwindow = CompressWindow(r.window);
    if (cp.zwindow.empty()) return false;
    if (window_bytes_ + cp.zwindow.size() > limits_.max_window_bytes) {
      exhausted_ = true;
      return false;
    }
    window_bytes_ += cp.zwindow.size();
  }
  ++placed_;
  Recorded(cp.out, cp.in);
  out.push_back(std::move(cp));
  return true;
}

void GzipTargetPlacer::PlaceBefore(uint64_t target, std::vector<GzipCheckpoint>& out) {
  if (!out.empty() || recent_.empty()) return;  // one placement per restart point serves all it passes
  const Recent& before = BeforeTarget(target);
  // A recorded checkpoint close enough before it in both streams serves it.
  const bool covered = recorded_ && last_in_ <= target && target - last_in_ < limits_.gap &&
                       before.at.out < last_out_ + limits_.align;
  if (!covered) Place(before, out);
}

std::vector<GzipCheckpoint> GzipTargetPlacer::Restart(const GzipCheckpoint& at, std::span<const uint8_t> window) {
  std::vector<GzipCheckpoint> out;
  const uint64_t align = std::max<uint64_t>(limits_.align, 1);
  for (; !exhausted_ && next_ < points_.size(); ++next_) {
    const Point& p = points_[next_];
    if (p.after ? p.at > at.in : p.at >= at.in) break;
    if (p.after) {
      // The target's output ends at or before at.out: the span must reach the end of its block.
      const uint64_t block_end = (at.out + align - 1) / align * align;
      after_out_ = after_ ? std::max(after_out_, block_end) : block_end;
      after_ = true;
      continue;
    }
    PlaceBefore(p.at, out);  // `at` is past p: the newest recent point is the last at or before it
  }
  if (after_ && at.out >= after_out_) {
    after_ = false;
    Place(Recent{at, window, {}}, out);
  }
  if (!active()) {
    recent_.clear();
    return out;
  }
  recent_.push_back(Recent{at, window, {}});
  // Later targets lie past `at`: they pick nothing before the last point at or before its block's start.
  const uint64_t block_start = at.out / align * align;
  while (recent_.size() >= 2 && recent_[1].at.out <= block_start) recent_.pop_front();
  return out;
}

std::vector<GzipCheckpoint> GzipTargetPlacer::Finish() {
  std::vector<GzipCheckpoint> out;
  for (; !exhausted_ && next_ < points_.size(); ++next_) {
    if (!points_[next_].after) PlaceBefore(points_[next_].at, out);
  }
  after_ = false;  // the stream's end ends the last span
  recent_.clear();
  return out;
}

void GzipTargetPlacer::Preserve() {
  for (Recent& r : recent_) {
    if (r.window.empty() || r.window.data() == r.copy.data()) continue;
    r.copy.assign(r.window.begin(), r.window.end());
    r.window = r.copy;
  }
}

}  // namespace ocifs
