#include "fuse/mount_stats.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fuse/mount_state.h"

using namespace ocifs;

namespace {

MountStats StatsSample(pid_t pid, int64_t started_ms) {
  MountStats s;
  s.pid = pid;
  s.started_ms = started_ms;
  s.updated_ms = started_ms + 1000;
  s.mountpoint = "/mnt/vm one";
  s.reference = "127.0.0.1:5000/vms/debian:12";
  s.registry = "127.0.0.1:5000";
  s.fuse_reads = 10;
  s.fuse_read_errors = 1;
  s.blob_requests = 4;
  s.blob_bytes = 4096;
  s.blob_fetches = 4;
  s.cache = true;
  s.cache_hits = 7;
  s.cache_used_bytes = 1 << 20;
  s.cache_bound_bytes = 1 << 30;
  s.last_read_error = "corrupt: \"quoted\"";
  s.last_read_error_ms = started_ms + 500;
  LatencyHistogram h;
  h.Observe(std::chrono::milliseconds(2));
  s.fuse_read_latency = h.Snapshot();
  s.fetch_latency = h.Snapshot();
  s.layers.push_back({"sha256:aa", 3 << 20, 3, 2});
  return s;
}

std::string StatsTempDir() {
  std::string dir = std::filesystem::temp_directory_path().string() + "/mount-stats-test-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("mount stats survive a round trip through their JSON") {
  MountStats s = StatsSample(42, 1'700'000'000'000);
  auto back = MountStats::FromJson(s.ToJson());
  REQUIRE(back.ok());
  CHECK(back->pid == 42);
  CHECK(back->mountpoint == s.mountpoint);
  CHECK(back->registry == "127.0.0.1:5000");
  CHECK(back->fuse_reads == 10);
  CHECK(back->blob_bytes == 4096);
  CHECK(back->cache);
  CHECK(back->cache_bound_bytes == 1u << 30);
  CHECK(back->last_read_error == s.last_read_error);
  CHECK(back->fuse_read_latency.counts == s.fuse_read_latency.counts);
  CHECK(back->fetch_latency.sum_us == 2000);
  REQUIRE(back->layers.size() == 1);
  CHECK(back->layers[0].cached_chunks == 2);
}

TEST_CASE("a stats file with a missing or wrong field is refused, naming it") {
  nlohmann::json j = nlohmann::json::parse(StatsSample(1, 1).ToJson());
  j.erase("blob_bytes");
  auto r = MountStats::FromJson(j.dump());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("blob_bytes") != std::string::npos);
  j = nlohmann::json::parse(StatsSample(1, 1).ToJson());
  j["fetch_latency"]["counts"] = {1, 2};
  r = MountStats::FromJson(j.dump());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("fetch_latency.counts") != std::string::npos);
  j = nlohmann::json::parse(StatsSample(1, 1).ToJson());
  j["layers"][0]["cached_chunks"] = 9;
  CHECK_FALSE(MountStats::FromJson(j.dump()).ok());
  CHECK_FALSE(MountStats::FromJson("not json").ok());
}

TEST_CASE("every serving process of a mount has its own file; the sum adds counters and keeps the newest gauges") {
  const std::string dir = StatsTempDir();
  MountStats first = StatsSample(100, 1000);
  MountStats second = StatsSample(200, 5000);
  second.cache_used_bytes = 2 << 20;
  second.layers[0].cached_chunks = 3;
  REQUIRE(SaveMountStats(dir, first).ok());
  REQUIRE(SaveMountStats(dir, second).ok());
  MountStats other = StatsSample(300, 9000);
  other.mountpoint = "/mnt/another";
  REQUIRE(SaveMountStats(dir, other).ok());
  // Neither a state file nor a half-written temporary is read as stats.
  std::ofstream(MountStatePath(dir, first.mountpoint, ".json")) << "{}";
  std::ofstream(MountStatsPath(dir, first.mountpoint, 400) + ".tmp") << "{";

  auto parts = LoadMountStats(dir, first.mountpoint);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].pid == 100);  // oldest first
  auto sum = SumMountStats(parts);
  REQUIRE(sum.ok());
  CHECK(sum->generations == 2);
  CHECK(sum->pid == 200);
  CHECK(sum->fuse_reads == 20);
  CHECK(sum->blob_bytes == 8192);
  CHECK(sum->cache_hits == 14);
  CHECK(sum->fuse_read_latency.count() == 2);
  CHECK(sum->fetch_latency.sum_us == 4000);
  CHECK(sum->cache_used_bytes == 2u << 20);       // a gauge: the newest
  CHECK(sum->layers[0].cached_chunks == 3);

  RemoveMountStats(dir, first.mountpoint);
  CHECK(LoadMountStats(dir, first.mountpoint).empty());
  CHECK(LoadMountStats(dir, other.mountpoint).size() == 1);
  CHECK_FALSE(SumMountStats({}).ok());
  std::filesystem::remove_all(dir);
}
