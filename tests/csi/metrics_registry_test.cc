#include "csi/metrics_registry.h"

#include <catch2/catch.hpp>
#include <sstream>

using namespace ocifs;

namespace {

VolumeSample Volume(const std::string& id, const std::string& registry, uint64_t bytes, pid_t pid = 10) {
  VolumeSample v;
  v.volume_id = id;
  v.target = "/pods/" + id + "/mount";
  v.state = "healthy";
  MountStats s;
  s.pid = pid;
  s.mountpoint = v.target;
  s.registry = registry;
  s.blob_requests = 2;
  s.blob_bytes = bytes;
  s.blob_fetches = 3;
  s.blob_fetch_errors = 1;
  s.fuse_reads = 5;
  s.cache_used_bytes = bytes;
  s.cache_bound_bytes = 1 << 30;
  LatencyHistogram h;
  h.Observe(std::chrono::microseconds(300));
  h.Observe(std::chrono::milliseconds(40));
  s.fuse_read_latency = h.Snapshot();
  v.published.stats = s;
  v.published.takeovers = 1;
  return v;
}

// The value of the sample line `series` (name with labels, as printed), or -1.
double Value(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace

TEST_CASE("the page sums the volumes' counters by registry and says what each metric is") {
  MetricsRegistry registry;
  std::string page = registry.Render({Volume("a", "r1:5000", 100), Volume("b", "r1:5000", 50),
                                      Volume("c", "r2", 7)},
                                     PluginSample{3});
  CHECK(page.find("# HELP ocifs_blob_bytes_total ") != std::string::npos);
  CHECK(page.find("# TYPE ocifs_blob_bytes_total counter") != std::string::npos);
  CHECK(Value(page, "ocifs_blob_bytes_total{registry=\"r1:5000\"}") == 150);
  CHECK(Value(page, "ocifs_blob_bytes_total{registry=\"r2\"}") == 7);
  CHECK(Value(page, "ocifs_blob_fetches_total{registry=\"r1:5000\",outcome=\"ok\"}") == 4);
  CHECK(Value(page, "ocifs_blob_fetches_total{registry=\"r1:5000\",outcome=\"error\"}") == 2);
  CHECK(Value(page, "ocifs_fuse_reads_total") == 15);
  CHECK(Value(page, "ocifs_takeovers_total") == 3);
  CHECK(Value(page, "ocifs_remounts_total") == 3);
  CHECK(Value(page, "ocifs_volumes{state=\"healthy\"}") == 3);
  CHECK(Value(page, "ocifs_volumes{state=\"disconnected\"}") == 0);
  CHECK(Value(page, "ocifs_cache_used_bytes") == 100);  // the shared directory: the largest, not a sum
  CHECK(Value(page, "ocifs_errors_total{kind=\"blob_fetch\"}") == 3);
}

TEST_CASE("a histogram's buckets are cumulative and end with +Inf equal to its count") {
  MetricsRegistry registry;
  std::string page = registry.Render({Volume("a", "r", 1), Volume("b", "r", 1)}, {});
  CHECK(page.find("# TYPE ocifs_fuse_read_duration_seconds histogram") != std::string::npos);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_bucket{le=\"0.0001\"}") == 0);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_bucket{le=\"0.0005\"}") == 2);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_bucket{le=\"0.025\"}") == 2);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_bucket{le=\"0.05\"}") == 4);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_bucket{le=\"+Inf\"}") == 4);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_count") == 4);
  CHECK(Value(page, "ocifs_fuse_read_duration_seconds_sum") == Approx(0.0806));
}

TEST_CASE("counters of a volume that went away or was remounted are kept, so totals never go down") {
  MetricsRegistry registry;
  (void)registry.Render({Volume("a", "r", 100), Volume("b", "r", 10)}, {});
  // b is unpublished; a is remounted (a new mount counting from zero).
  std::string page = registry.Render({Volume("a", "r", 5, /*pid=*/99)}, {});
  CHECK(Value(page, "ocifs_blob_bytes_total{registry=\"r\"}") == 115);
  CHECK(Value(page, "ocifs_volumes{state=\"healthy\"}") == 1);
  // The same mount growing is not counted twice.
  page = registry.Render({Volume("a", "r", 8, /*pid=*/99)}, {});
  CHECK(Value(page, "ocifs_blob_bytes_total{registry=\"r\"}") == 118);
}

TEST_CASE("label values are escaped") {
  MetricsRegistry registry;
  std::string page = registry.Render({Volume("a", "we\"ird\\host", 1)}, {});
  CHECK(page.find("registry=\"we\\\"ird\\\\host\"") != std::string::npos);
}
