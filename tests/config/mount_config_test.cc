#include "config/mount_config.h"

#include <catch2/catch.hpp>

#include "base/size_text.h"

using namespace ocifs;

TEST_CASE("the defaults are what docs/cli.md promises") {
  MountConfig c;
  CHECK(c.mode == MountMode::kDisk);
  CHECK(c.cache_size == (10ull << 30));
  CHECK(c.memory_cache == (2ull << 20));
  CHECK(c.chunk_size == (1ull << 20));
  CHECK(c.readahead == (4ull << 20));
  CHECK(c.miss_fetch == MissFetch::kExact);
  CHECK(c.cluster_cache == ClusterCacheMode::kOn);
  CHECK_FALSE(c.decode_threads.has_value());
  CHECK_FALSE(c.prefetch_all);
  CHECK(c.prefetch_rate == 0);
  CHECK(c.profile == ProfileSource::kImage);
  CHECK(c.tls_verify);
  CHECK(c.log_level == "warn");
  CHECK(Validate(c).ok());
}

TEST_CASE("the chunk size must be a power of two from 64K to 16M") {
  for (uint64_t good : {64ull << 10, 1ull << 20, 16ull << 20}) {
    MountConfig c;
    c.chunk_size = good;
    CHECK(Validate(c).ok());
  }
  for (uint64_t bad : {3ull << 20, 32ull << 10, 32ull << 20, 0ull}) {
    MountConfig c;
    c.chunk_size = bad;
    Status s = Validate(c);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message() == "--chunk-size must be a power of two from 64K to 16M, not '" + FormatSize(bad) + "'");
  }
}

TEST_CASE("a validation error names the option as it was spelled") {
  MountConfig c;
  c.chunk_size = 3ull << 20;
  c.spelled["chunk-size"] = {"-o chunk_size", "3M", false};
  CHECK(Validate(c).message() == "-o chunk_size must be a power of two from 64K to 16M, not '3M'");
  c.chunk_size = 1ull << 20;
  c.decode_threads = 65;
  c.spelled["decode-threads"] = {"--decode-threads", "65", false};
  CHECK(Validate(c).message() == "--decode-threads must be auto or a number from 0 to 64, not '65'");
  c.decode_threads = 64;
  CHECK(Validate(c).ok());
}

TEST_CASE("credentials without a colon are refused without echoing them") {
  MountConfig c;
  c.creds = "secretvalue";
  Status s = Validate(c);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("secretvalue") == std::string::npos);
  CHECK(s.message().find("--creds") != std::string::npos);
}

TEST_CASE("host paths become absolute from the caller's directory; the disk path stays inside the image") {
  MountConfig c;
  c.cache_dir = "cache";
  c.stats_file = "../s.json";
  c.authfile = "/etc/auth.json";
  c.profile = ProfileSource::kFile;
  c.profile_file = "./p/boot.profile";
  c.record_profile = "out.profile";
  c.log_file = "log";
  c.cert_dir = "certs.d/";
  c.disk_path = "disk/a.img";
  MakePathsAbsolute(&c, "/home/u/work");
  CHECK(c.cache_dir == "/home/u/work/cache");
  CHECK(c.stats_file == "/home/u/s.json");
  CHECK(c.authfile == "/etc/auth.json");
  CHECK(c.profile_file == "/home/u/work/p/boot.profile");
  CHECK(c.record_profile == "/home/u/work/out.profile");
  CHECK(c.log_file == "/home/u/work/log");
  CHECK(c.cert_dir == "/home/u/work/certs.d/");
  CHECK(c.disk_path == "disk/a.img");
}

TEST_CASE("the registry options come from the config") {
  MountConfig c;
  c.creds = "u:p";
  c.authfile = "/a.json";
  c.cert_dir = "/certs";
  c.tls_verify = false;
  c.platform = "linux/arm64";
  RegistryOptions r = ToRegistryOptions(c);
  CHECK(r.creds == std::optional<std::string>("u:p"));
  CHECK(r.authfile == "/a.json");
  CHECK(r.cert_dir == "/certs");
  CHECK_FALSE(r.tls_verify);
  CHECK(r.platform == "linux/arm64");
  CHECK_FALSE(ToRegistryOptions(MountConfig{}).creds.has_value());
}

TEST_CASE("sizes are formatted so that they parse back") {
  CHECK(FormatSize(0) == "0");
  CHECK(FormatSize(1) == "1");
  CHECK(FormatSize(64ull << 10) == "64K");
  CHECK(FormatSize(16ull << 20) == "16M");
  CHECK(FormatSize(10ull << 30) == "10G");
  CHECK(FormatSize(2ull << 40) == "2T");
  CHECK(FormatSize(1536ull << 10) == "1536K");
  for (uint64_t n : {0ull, 4095ull, 1ull << 20, 3ull << 30, 12345678ull}) {
    auto back = ParseSize(FormatSize(n));
    REQUIRE(back.ok());
    CHECK(*back == n);
  }
}
