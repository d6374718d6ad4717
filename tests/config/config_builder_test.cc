#include "config/config_builder.h"

#include <catch2/catch.hpp>
#include <tuple>
#include <vector>

using namespace ocifs;

namespace {

MountConfig Built(const MountConfigBuilder& b) {
  auto c = b.Build("/cwd");
  REQUIRE(c.ok());
  return std::move(c).value();
}

// Applies one option as `how` spells it; REQUIREs success.
MountConfig With(Spelling how, const MountOption& o, std::string_view value) {
  MountConfigBuilder b;
  Status s;
  if (how == Spelling::kFlag) s = b.SetFlag("--" + std::string(o.name), value);
  if (how == Spelling::kMountOption) s = b.ApplyMountOptions(std::string(o.key) + "=" + std::string(value));
  if (how == Spelling::kVolumeAttribute) s = b.SetVolumeAttribute(o.attribute, value);
  INFO(SpelledName(o, how) << " " << value << ": " << s.ToString());
  REQUIRE(s.ok());
  return Built(b);
}

// Parses `args` (ToArgs' "--name=value" and "--switch") back as flags.
MountConfig FromArgs(const std::vector<std::string>& args) {
  MountConfigBuilder b;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-o") {
      REQUIRE(b.ApplyMountOptions(args.at(++i)).ok());
      continue;
    }
    size_t eq = args[i].find('=');
    std::string value = eq == std::string::npos ? "true" : args[i].substr(eq + 1);
    REQUIRE(b.SetFlag(args[i].substr(0, eq), value).ok());
  }
  return Built(b);
}

}  // namespace

TEST_CASE("every spelling of an option lands in the same typed field") {
  // option, value as a flag and -o take it, as a volume attribute takes it, a check of the field
  using Check = bool (*)(const MountConfig&);
  const std::vector<std::tuple<std::string, std::string, std::string, Check>> cases = {
      {"mode", "tree", "tree", [](const MountConfig& c) { return c.mode == MountMode::kTree; }},
      {"disk-path", "disk/b.img", "disk/b.img", [](const MountConfig& c) { return c.disk_path == "disk/b.img"; }},
      {"platform", "linux/arm64", "linux/arm64", [](const MountConfig& c) { return c.platform == "linux/arm64"; }},
      {"tls-verify", "false", "false", [](const MountConfig& c) { return !c.tls_verify; }},
      {"prefetch-rate", "20M", "20M", [](const MountConfig& c) { return c.prefetch_rate == (20ull << 20); }},
      {"cluster-cache", "off", "off", [](const MountConfig& c) { return c.cluster_cache == ClusterCacheMode::kOff; }},
      {"prefetch-profile", "none", "none", [](const MountConfig& c) { return c.profile == ProfileSource::kNone; }},
      {"cache-size", "1G", "", [](const MountConfig& c) { return c.cache_size == (1ull << 30); }},
      {"memory-cache", "16M", "", [](const MountConfig& c) { return c.memory_cache == (16ull << 20); }},
      {"chunk-size", "256K", "", [](const MountConfig& c) { return c.chunk_size == (256ull << 10); }},
      {"readahead", "0", "", [](const MountConfig& c) { return c.readahead == 0; }},
      {"miss-fetch", "chunk", "", [](const MountConfig& c) { return c.miss_fetch == MissFetch::kChunk; }},
      {"decode-threads", "3", "", [](const MountConfig& c) { return c.decode_threads == std::optional<uint32_t>(3); }},
      {"cache-dir", "c", "", [](const MountConfig& c) { return c.cache_dir == "/cwd/c"; }},
      {"authfile", "/a.json", "", [](const MountConfig& c) { return c.authfile == "/a.json"; }},
      {"cert-dir", "/certs", "", [](const MountConfig& c) { return c.cert_dir == "/certs"; }},
      {"stats-file", "s.json", "", [](const MountConfig& c) { return c.stats_file == "/cwd/s.json"; }},
      {"record-profile", "r", "", [](const MountConfig& c) { return c.record_profile == "/cwd/r"; }},
      {"log-level", "debug", "", [](const MountConfig& c) { return c.log_level == "debug"; }},
      {"log-file", "l", "", [](const MountConfig& c) { return c.log_file == "/cwd/l"; }},
  };
  for (const auto& [name, value, attribute_value, check] : cases) {
    const MountOption* o = FindOption(name);
    REQUIRE(o != nullptr);
    INFO(name);
    CHECK(check(With(Spelling::kFlag, *o, value)));
    CHECK(check(With(Spelling::kMountOption, *o, value)));
    if (!o->attribute.empty()) CHECK(check(With(Spelling::kVolumeAttribute, *o, attribute_value)));
    CHECK_FALSE(check(MountConfig{}));
  }
}

TEST_CASE("switches: a bare flag, a bare or worded -o key, true or false as a volume attribute") {
  MountConfigBuilder b;
  REQUIRE(b.SetFlag("--prefetch-all", "true").ok());
  REQUIRE(b.SetFlag("allow-other", "true").ok());
  MountConfig flags = Built(b);
  CHECK(flags.prefetch_all);
  CHECK(flags.allow_other);

  MountConfigBuilder o;
  REQUIRE(o.ApplyMountOptions("prefetch=all,allow_other,tls_verify").ok());
  MountConfig opts = Built(o);
  CHECK(opts.prefetch_all);
  CHECK(opts.allow_other);
  CHECK(opts.tls_verify);
  REQUIRE(o.ApplyMountOptions("prefetch=none,tls_verify=false").ok());
  CHECK_FALSE(Built(o).prefetch_all);
  CHECK_FALSE(Built(o).tls_verify);

  MountConfigBuilder v;
  REQUIRE(v.SetVolumeAttribute("prefetchAll", "true").ok());
  REQUIRE(v.SetVolumeAttribute("profile", "image").ok());
  CHECK(Built(v).prefetch_all);
  CHECK(Built(v).profile == ProfileSource::kImage);
  CHECK(v.SetVolumeAttribute("diskpath", "x").code() == Code::kNotFound);
}

TEST_CASE("each invalid value is refused naming the option as spelled") {
  const std::vector<std::tuple<Spelling, std::string, std::string, std::string>> cases = {
      {Spelling::kFlag, "mode", "weird", "--mode must be disk or tree, not 'weird'"},
      {Spelling::kMountOption, "mode", "block", "-o mode must be disk or tree, not 'block'"},
      {Spelling::kVolumeAttribute, "mode", "block", "volume attribute mode must be \"disk\" or \"tree\", not \"block\""},
      {Spelling::kFlag, "cache-size", "lots", "--cache-size must be a size such as 512M or 10G, not 'lots'"},
      {Spelling::kMountOption, "readahead", "4Q", "-o readahead must be a size such as 512M or 10G, not '4Q'"},
      {Spelling::kFlag, "prefetch-rate", "fast", "--prefetch-rate must be bytes per second such as 20M, not 'fast'"},
      {Spelling::kVolumeAttribute, "prefetch-rate", "fast",
       "volume attribute prefetchRate must be bytes per second such as 20M, not \"fast\""},
      {Spelling::kFlag, "miss-fetch", "some", "--miss-fetch must be exact or chunk, not 'some'"},
      {Spelling::kFlag, "cluster-cache", "maybe", "--cluster-cache must be on or off, not 'maybe'"},
      {Spelling::kVolumeAttribute, "cluster-cache", "false",
       "volume attribute clusterCache must be \"on\" or \"off\", not \"false\""},
      {Spelling::kFlag, "decode-threads", "-1", "--decode-threads must be auto or a number from 0 to 64, not '-1'"},
      {Spelling::kMountOption, "decode-threads", "many",
       "-o decode_threads must be auto or a number from 0 to 64, not 'many'"},
      {Spelling::kFlag, "tls-verify", "maybe", "--tls-verify must be true or false, not 'maybe'"},
      {Spelling::kFlag, "stall-timeout", "0", "--stall-timeout must be a number of seconds from 1 to 3600, not '0'"},
      {Spelling::kMountOption, "registry-timeout", "20s",
       "-o registry_timeout must be a number of seconds from 1 to 3600, not '20s'"},
      {Spelling::kVolumeAttribute, "tls-verify", "yes", "volume attribute tlsVerify must be \"true\" or \"false\", not \"yes\""},
      {Spelling::kMountOption, "prefetch-all", "some", "-o prefetch must be all or none, not 'some'"},
      {Spelling::kVolumeAttribute, "prefetch-all", "yes",
       "volume attribute prefetchAll must be \"true\" or \"false\", not \"yes\""},
      {Spelling::kVolumeAttribute, "prefetch-profile", "/node/file",
       "volume attribute profile must be \"image\" or \"none\", not \"/node/file\""},
      {Spelling::kFlag, "accel", "yes",
       "--accel must be auto, off or an artifact REGISTRY/REPO@sha256:DIGEST, not 'yes'"},
      {Spelling::kVolumeAttribute, "accel", "r.io/a:tag",
       "volume attribute accel must be \"auto\", \"off\" or an artifact REGISTRY/REPO@sha256:DIGEST, not \"r.io/a:tag\""},
  };
  for (const auto& [how, name, value, message] : cases) {
    const MountOption& o = *FindOption(name);
    MountConfigBuilder b;
    Status s = how == Spelling::kFlag          ? b.SetFlag(name, value)
               : how == Spelling::kMountOption ? b.ApplyMountOptions(std::string(o.key) + "=" + value)
                                               : b.SetVolumeAttribute(o.attribute, value);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message() == message);
  }
}

TEST_CASE("rules between values are checked at Build, naming the option as spelled") {
  MountConfigBuilder o;
  REQUIRE(o.ApplyMountOptions("chunk_size=3M").ok());
  CHECK(o.Build("/").status().message() == "-o chunk_size must be a power of two from 64K to 16M, not '3M'");
  MountConfigBuilder f;
  REQUIRE(f.SetFlag("--chunk-size", "3000").ok());
  CHECK(f.Build("/").status().message() == "--chunk-size must be a power of two from 64K to 16M, not '3000'");
  MountConfigBuilder t;
  REQUIRE(t.SetFlag("--decode-threads", "65").ok());
  CHECK(t.Build("/").status().message() == "--decode-threads must be auto or a number from 0 to 64, not '65'");
  MountConfigBuilder c;
  Status creds = c.SetFlag("--creds", "secretvalue");
  CHECK(creds.code() == Code::kInvalidArgument);
  CHECK(creds.message().find("secretvalue") == std::string::npos);
}

TEST_CASE("-o: generic mount(8) options are ignored, FUSE's forwarded, unknown ones refused") {
  MountConfigBuilder b;
  REQUIRE(b.ApplyMountOptions("rw,tls_verify=false,cache_dir=/var/tmp/c,cache_size=1G,allow_other,mode=tree,"
                              "_netdev,nofail,x-systemd.automount,comment=x,defaults,noatime,nodev")
              .ok());
  MountConfig c = Built(b);
  CHECK_FALSE(c.tls_verify);
  CHECK(c.cache_dir == "/var/tmp/c");
  CHECK(c.cache_size == (1ull << 30));
  CHECK(c.allow_other);
  CHECK(c.mode == MountMode::kTree);
  CHECK(c.fuse_options == std::vector<std::string>{"noatime", "nodev"});
  Status s = b.ApplyMountOptions("tls_verify=false,frobnicate=3");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "unknown mount option 'frobnicate'");
  CHECK(b.ApplyMountOptions("creds=u:p").code() == Code::kInvalidArgument);  // never from an fstab line
}

TEST_CASE("an escaped comma stays inside an -o value") {
  MountConfigBuilder b;
  REQUIRE(b.ApplyMountOptions("cache_dir=/tmp/a\\,b").ok());
  CHECK(Built(b).cache_dir == "/tmp/a,b");
}

TEST_CASE("a config spelled back by ToArgs parses to the same config, and never carries credentials") {
  MountConfigBuilder b;
  REQUIRE(b.SetFlag("--creds", "user:secretword").ok());
  for (auto [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"authfile", "/s/1.json"}, {"cert-dir", "/certs"}, {"tls-verify", "false"}, {"platform", "linux/arm64"},
           {"log-level", "info"}, {"cache-dir", "/c"}, {"mode", "tree"}, {"disk-path", "disk/a b.img"},
           {"cache-size", "20G"}, {"memory-cache", "1536K"}, {"chunk-size", "64K"}, {"readahead", "0"},
           {"miss-fetch", "chunk"}, {"decode-threads", "0"}, {"prefetch-all", "true"}, {"prefetch-rate", "8M"},
           {"prefetch-profile", "/p"}, {"accel", "127.0.0.1:5000/a/b@sha256:" + std::string(64, 'a')},
           {"cluster-cache", "off"}, {"record-profile", "/r"}, {"registries-conf", "/etc/r.conf"},
           {"stall-timeout", "3"}, {"registry-timeout", "45"},
           {"stats-file", "/s"}, {"allow-other", "true"}}) {
    REQUIRE(b.SetFlag(flag, value).ok());
  }
  REQUIRE(b.ApplyMountOptions("noatime").ok());
  MountConfig c = Built(b);
  std::vector<std::string> args = ToArgs(c);
  for (const std::string& a : args) CHECK(a.find("secretword") == std::string::npos);
  MountConfig back = FromArgs(args);
  back.creds = c.creds;
  CHECK(ToArgs(back) == args);
  CHECK(back.tls_verify == c.tls_verify);
  CHECK(back.memory_cache == (1536ull << 10));
  CHECK(back.decode_threads == std::optional<uint32_t>(0));
  CHECK(back.profile == ProfileSource::kFile);
  CHECK(back.profile_file == "/p");
  CHECK(back.fuse_options == c.fuse_options);
  CHECK(back.disk_path == "disk/a b.img");
  CHECK(back.accel == "127.0.0.1:5000/a/b@sha256:" + std::string(64, 'a'));
  CHECK(ToRegistryOptions(back).registries_conf == "/etc/r.conf");
  CHECK(ToRegistryOptions(back).stall_timeout_seconds == 3);
  CHECK(ToRegistryOptions(back).registry_timeout_seconds == 45);
}

TEST_CASE("ToArgs leaves out the defaults and, for inspect, the mount's own options") {
  CHECK(ToArgs(MountConfig{}).empty());
  MountConfig c;
  c.authfile = "/a.json";
  c.tls_verify = false;
  c.mode = MountMode::kTree;
  c.profile = ProfileSource::kNone;
  CHECK(ToArgs(c) ==
        std::vector<std::string>{"--authfile=/a.json", "--tls-verify=false", "--mode=tree", "--prefetch-profile=none"});
  CHECK(ToArgs(c, /*registry_only=*/true) == std::vector<std::string>{"--authfile=/a.json", "--tls-verify=false"});
}

TEST_CASE("the volume attributes are the table's") {
  CHECK(VolumeAttributeNames() ==
        "tlsVerify, platform, mode, diskPath, disk, prefetchAll, prefetchRate, profile, accel, clusterCache");
}
