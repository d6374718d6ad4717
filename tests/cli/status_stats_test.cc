#include "cli/status_stats.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {

MountStats Sample() {
  MountStats s;
  s.cache = true;
  s.blob_bytes = 3 << 20;
  s.blob_requests = 4;
  s.fuse_reads = 9;
  s.fuse_read_errors = 1;
  s.prefetch_all = true;
  s.generations = 2;
  s.layers = {{"sha256:small", 1000, 1, 1}, {"sha256:disk", 4 << 20, 4, 1}};
  return s;
}

}  // namespace

TEST_CASE("status stats name the largest layer as the disk's and count what is cached of it") {
  nlohmann::json j = StatusStatsJson(Sample());
  CHECK(j["disk_layer"] == "sha256:disk");
  CHECK(j["disk_layer_bytes"] == 4 << 20);
  CHECK(j["disk_layer_cached"].get<double>() == Approx(0.25));
  CHECK(j["cached"].get<double>() == Approx(0.4));  // 2 of 5 chunks
  CHECK(j["bytes_fetched"] == 3 << 20);
  CHECK(j["requests"] == 4);
  CHECK(j["errors"]["fuse_read"] == 1);
  CHECK(j["background_fetch"]["enabled"] == true);
  CHECK(j["background_fetch"]["chunks"] == 2);
  CHECK(j["background_fetch"]["total_chunks"] == 5);
  CHECK(j["serving_processes"] == 2);
}

TEST_CASE("status stats draw bars only on a terminal") {
  nlohmann::json j = StatusStatsJson(Sample());
  std::string tty = StatusStatsText(j, true);
  std::string plain = StatusStatsText(j, false);
  CHECK(tty.find("[########......................] 25.0% of the disk's layer") != std::string::npos);
  CHECK(plain.find("cached:    25.0% of the disk's layer (4.0 MiB)") != std::string::npos);
  CHECK(plain.find('[') == std::string::npos);
  CHECK(plain.find("prefetch:  40.0% (2/5 chunks)") != std::string::npos);
  CHECK(plain.find("errors:    1 reads, 0 fetches, 0 corrupt chunks") != std::string::npos);
}

TEST_CASE("a mount without a cache directory shows nothing cached") {
  MountStats s = Sample();
  s.cache = false;
  s.layers.clear();
  nlohmann::json j = StatusStatsJson(s);
  CHECK(j["cached"].get<double>() == 0.0);
  CHECK(j["disk_layer"] == "");
}
