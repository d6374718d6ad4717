#include "cli/status_stats.h"

#include <algorithm>
#include <cstdio>

namespace ocifs {
namespace {

double Fraction(uint64_t part, uint64_t whole) {
  return whole == 0 ? 1.0 : static_cast<double>(part) / static_cast<double>(whole);
}

std::string Bar(double fraction, int width) {
  const int full = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width + 0.5);
  return std::string("[")
      .append(static_cast<size_t>(full), '#')
      .append(static_cast<size_t>(width - full), '.')
      .append("]");
}

std::string Percent(double fraction) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * fraction);
  return buf;
}

std::string Mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

}  // namespace

nlohmann::json StatusStatsJson(const MountStats& s) {
  const LayerCacheStats* disk = nullptr;
  uint64_t chunks = 0, cached = 0;
  for (const LayerCacheStats& l : s.layers) {
    if (disk == nullptr || l.size > disk->size) disk = &l;
    chunks += l.chunks;
    cached += l.cached_chunks;
  }
  nlohmann::json j = {
      {"disk_layer", disk ? disk->digest : ""},
      {"disk_layer_bytes", disk ? disk->size : 0},
      {"disk_layer_cached", disk ? Fraction(disk->cached_chunks, disk->chunks) : 0.0},
      {"cached", s.cache ? Fraction(cached, chunks) : 0.0},
      {"bytes_fetched", s.blob_bytes},
      {"requests", s.blob_requests},
      {"reads", s.fuse_reads},
      {"errors",
       {{"fuse_read", s.fuse_read_errors}, {"blob_fetch", s.blob_fetch_errors}, {"cache_corrupt", s.cache_corrupt_dropped}}},
      {"background_fetch",
       {{"enabled", s.prefetch_all}, {"chunks", cached}, {"total_chunks", chunks}, {"fraction", Fraction(cached, chunks)}}},
      {"serving_processes", s.generations},
      {"updated_ms", s.updated_ms},
  };
  if (!s.last_read_error.empty()) j["last_read_error"] = s.last_read_error;
  return j;
}

std::string StatusStatsText(const nlohmann::json& j, bool tty) {
  const double disk = j["disk_layer_cached"].get<double>();
  std::string out = "  cached:    " + (tty ? Bar(disk, 30) + " " : std::string()) + Percent(disk) + " of the disk's layer (" +
                    Mib(j["disk_layer_bytes"].get<uint64_t>()) + ")\n";
  out += "  fetched:   " + Mib(j["bytes_fetched"].get<uint64_t>()) + " in " + std::to_string(j["requests"].get<uint64_t>()) +
         " requests\n";
  const auto& e = j["errors"];
  out += "  errors:    " + std::to_string(e["fuse_read"].get<uint64_t>()) + " reads, " +
         std::to_string(e["blob_fetch"].get<uint64_t>()) + " fetches, " + std::to_string(e["cache_corrupt"].get<uint64_t>()) +
         " corrupt chunks\n";
  const auto& bg = j["background_fetch"];
  if (bg["enabled"].get<bool>()) {
    const double f = bg["fraction"].get<double>();
    out += "  prefetch:  " + (tty ? Bar(f, 30) + " " : std::string()) + Percent(f) + " (" +
           std::to_string(bg["chunks"].get<uint64_t>()) + "/" + std::to_string(bg["total_chunks"].get<uint64_t>()) +
           " chunks)\n";
  }
  if (j.contains("last_read_error")) out += "  last error: " + j["last_read_error"].get<std::string>() + "\n";
  return out;
}

}  // namespace ocifs
