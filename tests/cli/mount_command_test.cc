#include "cli/mount_command.h"

#include <catch2/catch.hpp>

using namespace ocifs;

namespace {

// `oci-fs mount ARGS REF DIR` parsed as the command line does, to its config.
Result<MountConfig> Parse(std::vector<std::string> args) {
  CLI::App app;
  MountFlags flags;
  AddMountOptions(&app, &flags);
  app.add_option("REF", flags.reference)->required();
  app.add_option("DIR", flags.mountpoint)->required();
  args.insert(args.begin(), "oci-fs");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return BuildMountConfig(flags, "/cwd");
}

}  // namespace

TEST_CASE("mount options from fstab set the matching fields") {
  MountFlags flags;
  flags.options = {"rw,tls_verify=false,cache_dir=/var/tmp/c,cache_size=1G,allow_other,mode=tree,_netdev,noatime"};
  auto config = BuildMountConfig(flags, "/");
  REQUIRE(config.ok());
  REQUIRE_FALSE(config->tls_verify);
  REQUIRE(config->cache_dir == "/var/tmp/c");
  REQUIRE(config->cache_size == (1ull << 30));
  REQUIRE(config->allow_other);
  REQUIRE(config->mode == MountMode::kTree);
  REQUIRE(config->fuse_options == std::vector<std::string>{"noatime"});
}

TEST_CASE("an unknown mount option is an error naming it") {
  MountFlags flags;
  flags.options = {"tls_verify=false,frobnicate=3"};
  Status s = BuildMountConfig(flags, "/").status();
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE(s.message().find("frobnicate") != std::string::npos);
}

TEST_CASE("escaped commas stay inside an option value") {
  MountFlags flags;
  flags.options = {"cache_dir=/tmp/a\\,b"};
  auto config = BuildMountConfig(flags, "/");
  REQUIRE(config.ok());
  REQUIRE(config->cache_dir == "/tmp/a,b");
}

TEST_CASE("a mode other than disk or tree is refused") {
  MountFlags flags;
  flags.options = {"mode=block"};
  REQUIRE_FALSE(BuildMountConfig(flags, "/").ok());
}

TEST_CASE("readahead and prefetch mount options set the read-ahead window and the whole-layer fetch") {
  MountFlags flags;
  auto defaults = BuildMountConfig(flags, "/");
  REQUIRE(defaults.ok());
  REQUIRE_FALSE(defaults->prefetch_all);
  REQUIRE(defaults->readahead == (4ull << 20));
  flags.options = {"readahead=16M,prefetch=all"};
  auto config = BuildMountConfig(flags, "/");
  REQUIRE(config.ok());
  REQUIRE(config->readahead == (16ull << 20));
  REQUIRE(config->prefetch_all);
  flags.options.push_back("prefetch=none");
  config = BuildMountConfig(flags, "/");
  REQUIRE(config.ok());
  REQUIRE_FALSE(config->prefetch_all);
  flags.options = {"prefetch=some"};
  Status s = BuildMountConfig(flags, "/").status();
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE(s.message().find("prefetch") != std::string::npos);
}

TEST_CASE("the command line's flags are the table's; -o wins over a flag; paths are absolute") {
  auto config = Parse({"--chunk-size", "256K", "--tls-verify=false", "--prefetch-all", "--cache-dir", "cache",
                       "--decode-threads", "auto", "-o", "chunk_size=64K,noatime", "reg/disk:v1", "mnt"});
  REQUIRE(config.ok());
  CHECK(config->chunk_size == (64ull << 10));
  CHECK_FALSE(config->tls_verify);
  CHECK(config->prefetch_all);
  CHECK(config->cache_dir == "/cwd/cache");
  CHECK_FALSE(config->decode_threads.has_value());
  CHECK(config->fuse_options == std::vector<std::string>{"noatime"});
}

TEST_CASE("a usage error names the option as the user spelled it") {
  CHECK(Parse({"--chunk-size", "3M", "r", "d"}).status().message() ==
        "--chunk-size must be a power of two from 64K to 16M, not '3M'");
  CHECK(Parse({"-o", "chunk_size=3M", "r", "d"}).status().message() ==
        "-o chunk_size must be a power of two from 64K to 16M, not '3M'");
  CHECK(Parse({"--decode-threads", "65", "r", "d"}).status().message() ==
        "--decode-threads must be auto or a number from 0 to 64, not '65'");
  CHECK(Parse({"--miss-fetch", "some", "r", "d"}).status().code() == Code::kInvalidArgument);
}

TEST_CASE("the flags ToArgs spells parse back to the same config") {
  auto config = Parse({"--mode", "tree", "--disk-path", "disk/a.img", "--cache-size", "20G", "--allow-other",
                       "--prefetch-profile", "none", "--cluster-cache", "off", "--prefetch-rate", "8M",
                       "--stats-file", "/s.json", "-o", "nodev", "r", "d"});
  REQUIRE(config.ok());
  std::vector<std::string> args = ToArgs(*config);
  args.insert(args.end(), {"r", "d"});
  auto back = Parse(args);
  REQUIRE(back.ok());
  CHECK(ToArgs(*back) == ToArgs(*config));
  CHECK(back->mode == MountMode::kTree);
  CHECK(back->profile == ProfileSource::kNone);
  CHECK(back->fuse_options == std::vector<std::string>{"nodev"});
}

TEST_CASE("the stack options come from the config in one place") {
  MountConfig config;
  config.cache_dir = "/c";
  config.chunk_size = 256ull << 10;
  config.readahead = 0;
  config.miss_fetch = MissFetch::kChunk;
  config.cluster_cache = ClusterCacheMode::kOff;
  config.prefetch_all = true;
  config.prefetch_rate = 4ull << 20;
  config.record_profile = "/r.profile";
  config.mode = MountMode::kTree;
  config.tls_verify = false;
  auto options = ToStackOptions(config);
  REQUIRE(options.ok());
  CHECK(options->cache_dir == "/c");
  CHECK(options->chunk_size == (256u << 10));
  CHECK(options->blob_reads.readahead.max == 0);
  CHECK_FALSE(options->blob_reads.exact_small_misses);
  CHECK_FALSE(options->cluster_cache);
  CHECK(options->blob_reads.prefetch_all);
  CHECK(options->blob_reads.prefetch_all_rate == (4ull << 20));
  CHECK(options->blob_reads.recorder != nullptr);
  CHECK_FALSE(options->ready_at_disk_entry);
  CHECK_FALSE(options->registry.tls_verify);
  config.profile = ProfileSource::kFile;
  config.profile_file = "/no/such.profile";
  Status missing = ToStackOptions(config).status();
  CHECK(missing.message().find("--prefetch-profile") != std::string::npos);
}
