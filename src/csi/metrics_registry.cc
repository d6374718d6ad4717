#include "csi/metrics_registry.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace ocifs {
namespace {

// Label values escape backslash, double quote and newline (text format 0.0.4).
std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// A bucket bound as `le` ("0.00025", "1", "30") or a sum of seconds (microsecond precision).
std::string Number(double v, const char* format = "%g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

class Page {
 public:
  void Head(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Line(const std::string& name, const std::string& labels, uint64_t value) {
    out_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) + "\n";
  }
  // A metric with one unlabelled sample.
  void Single(const std::string& name, const char* type, const char* help, uint64_t value) {
    Head(name, type, help);
    Line(name, "", value);
  }
  void Histogram(const std::string& name, const char* help, const HistogramCounts& h) {
    Head(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBounds.size(); ++i) {
      cumulative += i < h.counts.size() ? h.counts[i] : 0;
      out_ += name + "_bucket{le=\"" + Number(kLatencyBounds[i]) + "\"} " + std::to_string(cumulative) + "\n";
    }
    out_ += name + "_bucket{le=\"+Inf\"} " + std::to_string(h.count()) + "\n";
    out_ += name + "_sum " + Number(static_cast<double>(h.sum_us) / 1e6, "%.6f") + "\n";
    out_ += name + "_count " + std::to_string(h.count()) + "\n";
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// A counter with one series per registry.
using ByRegistry = std::map<std::string, uint64_t>;

}  // namespace

bool MetricsRegistry::Shrank(const Kept& before, const Kept& now) {
  const MountStats& a = before.stats;
  const MountStats& b = now.stats;
  return b.generations < a.generations || now.takeovers < before.takeovers || b.fuse_reads < a.fuse_reads ||
         b.blob_requests < a.blob_requests || b.blob_bytes < a.blob_bytes || b.blob_fetches < a.blob_fetches ||
         b.cache_hits < a.cache_hits || b.cache_misses < a.cache_misses;
}

std::string MetricsRegistry::Render(const std::vector<VolumeSample>& volumes, const PluginSample& plugin) {
  std::lock_guard lock(mu_);
  // Counters: retire what went away or started again from zero (a remount).
  std::map<std::string, Kept> now;
  for (const VolumeSample& v : volumes) {
    if (!v.published.stats) continue;
    now[v.target] = Kept{*v.published.stats, v.published.takeovers};
  }
  for (auto& [target, kept] : last_) {
    auto it = now.find(target);
    if (it == now.end() || Shrank(kept, it->second)) retired_.push_back(kept);
  }
  last_ = now;

  std::vector<const Kept*> all;
  for (const Kept& k : retired_) all.push_back(&k);
  for (const auto& [target, k] : last_) all.push_back(&k);

  ByRegistry blob_requests, blob_bytes, fetch_ok, fetch_error, manifests;
  HistogramCounts fuse_latency, fetch_latency;
  uint64_t reads = 0, read_bytes = 0, hits = 0, misses = 0, evictions = 0, takeovers = 0;
  uint64_t err_read = 0, err_fetch = 0, err_corrupt = 0, err_cluster = 0;
  for (const Kept* k : all) {
    const MountStats& s = k->stats;
    const std::string registry = s.registry.empty() ? "local" : s.registry;
    blob_requests[registry] += s.blob_requests;
    blob_bytes[registry] += s.blob_bytes;
    fetch_ok[registry] += s.blob_fetches - std::min(s.blob_fetches, s.blob_fetch_errors);
    fetch_error[registry] += s.blob_fetch_errors;
    manifests[registry] += s.manifest_requests;
    fuse_latency.Add(s.fuse_read_latency);
    fetch_latency.Add(s.fetch_latency);
    reads += s.fuse_reads;
    read_bytes += s.fuse_read_bytes;
    hits += s.cache_hits;
    misses += s.cache_misses;
    evictions += s.cache_evictions;
    takeovers += k->takeovers;
    err_read += s.fuse_read_errors;
    err_fetch += s.blob_fetch_errors;
    err_corrupt += s.cache_corrupt_dropped;
    err_cluster += s.cluster_cache_dropped;
  }
  // Gauges of the volumes now: the cache directory is shared, so its usage is
  // the largest any mount reports, not a sum.
  std::map<std::string, uint64_t> states = {{"healthy", 0},      {"disconnected", 0}, {"not_mounted", 0},
                                            {"missing", 0},      {"stalled", 0},      {"failing", 0}};
  uint64_t cache_used = 0, cache_bound = 0, accelerated = 0;
  for (const VolumeSample& v : volumes) {
    ++states[v.state];
    if (!v.published.stats) continue;
    const MountStats& s = *v.published.stats;
    cache_used = std::max(cache_used, s.cache_used_bytes);
    cache_bound = std::max(cache_bound, s.cache_bound_bytes);
    accelerated += s.accel ? 1 : 0;
  }

  Page p;
  auto by_registry = [&](const std::string& name, const char* help, const ByRegistry& values) {
    p.Head(name, "counter", help);
    for (const auto& [registry, value] : values) p.Line(name, "registry=\"" + Escape(registry) + "\"", value);
  };
  by_registry("ocifs_blob_requests_total", "HTTP requests for blob bytes sent by the volumes' mounts", blob_requests);
  by_registry("ocifs_blob_bytes_total", "Blob body bytes received by the volumes' mounts", blob_bytes);
  p.Head("ocifs_blob_fetches_total", "counter", "Blob range reads by the volumes' mounts, by outcome");
  for (const auto& [registry, value] : fetch_ok) {
    p.Line("ocifs_blob_fetches_total", "registry=\"" + Escape(registry) + "\",outcome=\"ok\"", value);
    p.Line("ocifs_blob_fetches_total", "registry=\"" + Escape(registry) + "\",outcome=\"error\"",
           fetch_error[registry]);
  }
  by_registry("ocifs_manifest_requests_total", "Manifest requests sent by the volumes' mounts", manifests);
  p.Histogram("ocifs_registry_fetch_duration_seconds", "Time of one blob range read, first request to last byte",
              fetch_latency);
  p.Single("ocifs_fuse_reads_total", "counter", "FUSE read requests answered by the volumes' mounts", reads);
  p.Single("ocifs_fuse_read_bytes_total", "counter", "Bytes returned by FUSE reads", read_bytes);
  p.Histogram("ocifs_fuse_read_duration_seconds", "Time of one FUSE read, request to reply", fuse_latency);
  p.Single("ocifs_cache_hits_total", "counter", "Chunk cache lookups served from disk", hits);
  p.Single("ocifs_cache_misses_total", "counter", "Chunk cache lookups that found no usable chunk", misses);
  p.Single("ocifs_cache_evictions_total", "counter", "Chunk files the volumes' mounts evicted", evictions);
  p.Single("ocifs_cache_used_bytes", "gauge", "Bytes the chunk cache directory holds", cache_used);
  p.Single("ocifs_cache_bound_bytes", "gauge", "The chunk cache's bound, bytes", cache_bound);
  p.Head("ocifs_errors_total", "counter", "Errors by kind");
  p.Line("ocifs_errors_total", "kind=\"fuse_read\"", err_read);
  p.Line("ocifs_errors_total", "kind=\"blob_fetch\"", err_fetch);
  p.Line("ocifs_errors_total", "kind=\"cache_corrupt\"", err_corrupt);
  p.Line("ocifs_errors_total", "kind=\"cluster_cache_write\"", err_cluster);
  p.Head("ocifs_volumes", "gauge", "Volumes published on this node, by the state of their mount");
  for (const auto& [state, n] : states) p.Line("ocifs_volumes", "state=\"" + Escape(state) + "\"", n);
  p.Single("ocifs_volumes_accelerated", "gauge", "Volumes whose mount uses an acceleration artifact", accelerated);
  p.Single("ocifs_takeovers_total", "counter", "Serving processes a volume's keeper started after the first",
           takeovers);
  p.Single("ocifs_remounts_total", "counter", "Dead volume mounts the plugin mounted again", plugin.remounts);
  return p.Take();
}

}  // namespace ocifs
