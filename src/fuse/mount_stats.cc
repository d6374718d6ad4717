#include "fuse/mount_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "fuse/mount_state.h"

namespace ocifs {
namespace {

using Json = nlohmann::json;

// The counters, by JSON name: one table for writing, reading and summing.
constexpr std::pair<const char*, uint64_t MountStats::*> kCounters[] = {
    {"fuse_reads", &MountStats::fuse_reads},
    {"fuse_read_errors", &MountStats::fuse_read_errors},
    {"fuse_read_bytes", &MountStats::fuse_read_bytes},
    {"blob_requests", &MountStats::blob_requests},
    {"blob_bytes", &MountStats::blob_bytes},
    {"blob_fetches", &MountStats::blob_fetches},
    {"blob_fetch_errors", &MountStats::blob_fetch_errors},
    {"manifest_requests", &MountStats::manifest_requests},
    {"cache_hits", &MountStats::cache_hits},
    {"cache_misses", &MountStats::cache_misses},
    {"cache_evictions", &MountStats::cache_evictions},
    {"cache_corrupt_dropped", &MountStats::cache_corrupt_dropped},
    {"cluster_cache_hits", &MountStats::cluster_cache_hits},
    {"cluster_cache_dropped", &MountStats::cluster_cache_dropped},
};
constexpr std::pair<const char*, HistogramCounts MountStats::*> kHistograms[] = {
    {"fuse_read_latency", &MountStats::fuse_read_latency},
    {"fetch_latency", &MountStats::fetch_latency},
};

Status Bad(const std::string& field, const char* what) {
  return Corrupt("mount stats: \"" + field + "\" is not " + what);
}

bool IsCount(const Json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0); }

Result<uint64_t> Count(const Json& j, const std::string& name) {
  if (!j.contains(name) || !IsCount(j[name])) return Bad(name, "a non-negative integer");
  return j[name].get<uint64_t>();
}

Result<HistogramCounts> Histogram(const Json& j, const std::string& name) {
  if (!j.contains(name) || !j[name].is_object()) return Bad(name, "an object");
  const Json& h = j[name];
  HistogramCounts out;
  if (!h.contains("counts") || !h["counts"].is_array() || h["counts"].size() != kLatencyBounds.size() + 1) {
    return Bad(name + ".counts", "an array of one count per bucket");
  }
  for (const Json& c : h["counts"]) {
    if (!IsCount(c)) return Bad(name + ".counts", "an array of non-negative integers");
    out.counts.push_back(c.get<uint64_t>());
  }
  OCIFS_ASSIGN_OR_RETURN(out.sum_us, Count(h, "sum_us"));
  return out;
}

Json HistogramJson(const HistogramCounts& h) {
  std::vector<uint64_t> counts = h.counts;
  counts.resize(kLatencyBounds.size() + 1, 0);
  return Json{{"counts", counts}, {"sum_us", h.sum_us}};
}

}  // namespace

std::string MountStats::ToJson() const {
  Json j = {{"version", 1},          {"pid", pid},           {"started_ms", started_ms},
            {"updated_ms", updated_ms}, {"mountpoint", mountpoint}, {"reference", reference},
            {"registry", registry},  {"accel", accel},       {"prefetch_all", prefetch_all},
            {"cache", cache},        {"cache_used_bytes", cache_used_bytes},
            {"cache_bound_bytes", cache_bound_bytes}, {"last_read_error", last_read_error},
            {"last_read_error_ms", last_read_error_ms}};
  for (const auto& [name, field] : kCounters) j[name] = this->*field;
  for (const auto& [name, field] : kHistograms) j[name] = HistogramJson(this->*field);
  Json list = Json::array();
  for (const LayerCacheStats& l : layers) {
    list.push_back({{"digest", l.digest}, {"size", l.size}, {"chunks", l.chunks}, {"cached_chunks", l.cached_chunks}});
  }
  j["layers"] = std::move(list);
  return j.dump() + "\n";
}

Result<MountStats> MountStats::FromJson(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Corrupt("mount stats is not a JSON object");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != 1) {
    return Corrupt("mount stats: \"version\" is not 1");
  }
  MountStats s;
  auto text_field = [&](const char* name, std::string* out) -> Status {
    if (!j.contains(name) || !j[name].is_string()) return Bad(name, "a string");
    *out = j[name].get<std::string>();
    return Status::Ok();
  };
  auto flag = [&](const char* name, bool* out) -> Status {
    if (!j.contains(name) || !j[name].is_boolean()) return Bad(name, "true or false");
    *out = j[name].get<bool>();
    return Status::Ok();
  };
  OCIFS_ASSIGN_OR_RETURN(uint64_t pid, Count(j, "pid"));
  s.pid = static_cast<pid_t>(pid);
  OCIFS_ASSIGN_OR_RETURN(uint64_t started, Count(j, "started_ms"));
  OCIFS_ASSIGN_OR_RETURN(uint64_t updated, Count(j, "updated_ms"));
  s.started_ms = static_cast<int64_t>(started);
  s.updated_ms = static_cast<int64_t>(updated);
  OCIFS_RETURN_IF_ERROR(text_field("mountpoint", &s.mountpoint));
  if (s.mountpoint.empty() || s.mountpoint[0] != '/') return Bad("mountpoint", "absolute");
  OCIFS_RETURN_IF_ERROR(text_field("reference", &s.reference));
  OCIFS_RETURN_IF_ERROR(text_field("registry", &s.registry));
  OCIFS_RETURN_IF_ERROR(text_field("last_read_error", &s.last_read_error));
  OCIFS_ASSIGN_OR_RETURN(uint64_t error_ms, Count(j, "last_read_error_ms"));
  s.last_read_error_ms = static_cast<int64_t>(error_ms);
  OCIFS_RETURN_IF_ERROR(flag("accel", &s.accel));
  OCIFS_RETURN_IF_ERROR(flag("prefetch_all", &s.prefetch_all));
  OCIFS_RETURN_IF_ERROR(flag("cache", &s.cache));
  OCIFS_ASSIGN_OR_RETURN(s.cache_used_bytes, Count(j, "cache_used_bytes"));
  OCIFS_ASSIGN_OR_RETURN(s.cache_bound_bytes, Count(j, "cache_bound_bytes"));
  for (const auto& [name, field] : kCounters) {
    OCIFS_ASSIGN_OR_RETURN(s.*field, Count(j, name));
  }
  for (const auto& [name, field] : kHistograms) {
    OCIFS_ASSIGN_OR_RETURN(s.*field, Histogram(j, name));
  }
  if (!j.contains("layers") || !j["layers"].is_array()) return Bad("layers", "an array");
  for (const Json& l : j["layers"]) {
    if (!l.is_object() || !l.contains("digest") || !l["digest"].is_string()) return Bad("layers", "an array of layers");
    LayerCacheStats layer;
    layer.digest = l["digest"].get<std::string>();
    OCIFS_ASSIGN_OR_RETURN(layer.size, Count(l, "size"));
    OCIFS_ASSIGN_OR_RETURN(layer.chunks, Count(l, "chunks"));
    OCIFS_ASSIGN_OR_RETURN(layer.cached_chunks, Count(l, "cached_chunks"));
    if (layer.cached_chunks > layer.chunks) return Bad("layers.cached_chunks", "at most chunks");
    s.layers.push_back(std::move(layer));
  }
  return s;
}

std::string MountStatsPath(const std::string& dir, const std::string& mountpoint, pid_t pid) {
  return MountStatePath(dir, mountpoint, std::string(".").append(std::to_string(pid)).append(".stats"));
}

Status SaveMountStats(const std::string& dir, const MountStats& stats) {
  const std::string path = MountStatsPath(dir, stats.mountpoint, stats.pid);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << stats.ToJson();
    out.flush();
    if (!out) {
      ::unlink(tmp.c_str());
      return IoError("cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("rename " + tmp, err);
  }
  return Status::Ok();
}

namespace {

// The names of `mountpoint`'s stats files in `dir` ("<hash>.<digits>.stats").
std::vector<std::string> StatsFiles(const std::string& dir, const std::string& mountpoint) {
  const std::string stem = MountStatePath(dir, mountpoint, ".");
  const std::string prefix = stem.substr(stem.rfind('/') + 1);
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with(prefix) || !name.ends_with(".stats")) continue;
    std::string pid = name.substr(prefix.size(), name.size() - prefix.size() - 6);
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.push_back(dir + "/" + name);
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::vector<MountStats> LoadMountStats(const std::string& dir, const std::string& mountpoint) {
  std::vector<MountStats> out;
  for (const std::string& path : StatsFiles(dir, mountpoint)) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    auto stats = MountStats::FromJson(text.str());
    if (stats.ok() && stats->mountpoint == mountpoint) out.push_back(std::move(stats).value());
  }
  std::sort(out.begin(), out.end(), [](const MountStats& a, const MountStats& b) {
    return std::tie(a.started_ms, a.pid) < std::tie(b.started_ms, b.pid);
  });
  return out;
}

void RemoveMountStats(const std::string& dir, const std::string& mountpoint) {
  for (const std::string& path : StatsFiles(dir, mountpoint)) ::unlink(path.c_str());
}

Result<MountStats> SumMountStats(const std::vector<MountStats>& parts) {
  if (parts.empty()) return NotFound("no stats published");
  MountStats sum = parts.back();  // identity and gauges: the newest process
  for (const auto& [name, field] : kCounters) sum.*field = 0;
  for (const auto& [name, field] : kHistograms) sum.*field = HistogramCounts{};
  for (const MountStats& part : parts) {
    for (const auto& [name, field] : kCounters) sum.*field += part.*field;
    for (const auto& [name, field] : kHistograms) (sum.*field).Add(part.*field);
  }
  sum.generations = parts.size();
  return sum;
}

}  // namespace ocifs
