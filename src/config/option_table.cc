#include "config/option_table.h"

#include <array>
#include <charconv>

#include "base/size_text.h"
#include "registry/reference.h"

namespace ocifs {
namespace {

using Cfg = MountConfig;
constexpr std::string_view kOk;

// "true"/"false" (and, on the command line, 1/0/yes/no; "" is true there).
std::optional<bool> Bool(std::string_view v, Spelling how) {
  if (v == "true") return true;
  if (v == "false") return false;
  if (how == Spelling::kVolumeAttribute) return std::nullopt;
  if (v.empty() || v == "1" || v == "yes") return true;
  if (v == "0" || v == "no") return false;
  return std::nullopt;
}
std::string BoolText(bool b) { return b ? "true" : "false"; }

template <std::string Cfg::*F>
std::string_view Text(std::string_view v, Spelling, Cfg* c) {
  c->*F = std::string(v);
  return kOk;
}
template <std::string Cfg::*F>
std::string FormatText(const Cfg& c) {
  return c.*F;
}

template <uint64_t Cfg::*F>
std::string_view Size(std::string_view v, Spelling, Cfg* c) {
  auto bytes = ParseSize(v);
  if (!bytes.ok()) return "a size such as 512M or 10G";
  c->*F = *bytes;
  return kOk;
}
template <uint64_t Cfg::*F>
std::string FormatSizeOf(const Cfg& c) {
  return FormatSize(c.*F);
}

// Whole seconds, 1 to 3600 (registry timeouts).
template <long Cfg::*F>
std::string_view Seconds(std::string_view v, Spelling, Cfg* c) {
  long n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || n < 1 || n > 3600) {
    return "a number of seconds from 1 to 3600";
  }
  c->*F = n;
  return kOk;
}
template <long Cfg::*F>
std::string FormatSeconds(const Cfg& c) {
  return std::to_string(c.*F);
}

// A switch: present on the command line; "true"/"false" as a volume attribute.
template <bool Cfg::*F>
std::string_view Switch(std::string_view v, Spelling how, Cfg* c) {
  auto b = Bool(v, how);
  if (!b) return "{true} or {false}";
  c->*F = *b;
  return kOk;
}
template <bool Cfg::*F>
std::string FormatSwitch(const Cfg& c) {
  return c.*F ? "true" : "";
}

std::string_view ParseCreds(std::string_view v, Spelling, Cfg* c) {
  if (v.find(':') == std::string_view::npos) return "USER:PASS";
  c->creds = std::string(v);
  return kOk;
}

std::string_view ParseTlsVerify(std::string_view v, Spelling how, Cfg* c) {
  auto b = Bool(v, how);
  if (!b) return "{true} or {false}";
  c->tls_verify = *b;
  return kOk;
}

std::string_view ParseMode(std::string_view v, Spelling, Cfg* c) {
  if (v != "disk" && v != "tree") return "{disk} or {tree}";
  c->mode = v == "tree" ? MountMode::kTree : MountMode::kDisk;
  return kOk;
}

std::string_view ParseMissFetch(std::string_view v, Spelling, Cfg* c) {
  if (v != "exact" && v != "chunk") return "{exact} or {chunk}";
  c->miss_fetch = v == "chunk" ? MissFetch::kChunk : MissFetch::kExact;
  return kOk;
}

std::string_view ParseClusterCache(std::string_view v, Spelling, Cfg* c) {
  if (v != "on" && v != "off") return "{on} or {off}";
  c->cluster_cache = v == "on" ? ClusterCacheMode::kOn : ClusterCacheMode::kOff;
  return kOk;
}

constexpr std::string_view kDecodeThreadsRule = "{auto} or a number from 0 to 64";

std::string_view ParseDecodeThreads(std::string_view v, Spelling, Cfg* c) {
  if (v == "auto") {
    c->decode_threads.reset();
    return kOk;
  }
  uint32_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size()) return kDecodeThreadsRule;
  c->decode_threads = n;  // Validate checks the bound
  return kOk;
}

// -o prefetch=all|none; --prefetch-all; prefetchAll: "true"|"false".
std::string_view ParsePrefetchAll(std::string_view v, Spelling how, Cfg* c) {
  if (how != Spelling::kMountOption) return Switch<&Cfg::prefetch_all>(v, how, c);
  if (v != "all" && v != "none") return "{all} or {none}";
  c->prefetch_all = v == "all";
  return kOk;
}

// A file, or none; as a volume attribute (no node file): image or none.
std::string_view ParseProfile(std::string_view v, Spelling how, Cfg* c) {
  if (how == Spelling::kVolumeAttribute && v != "image" && v != "none") return "{image} or {none}";
  c->profile_file.clear();
  if (v.empty() || (v == "image" && how == Spelling::kVolumeAttribute)) {
    c->profile = ProfileSource::kImage;
  } else if (v == "none") {
    c->profile = ProfileSource::kNone;
  } else {
    c->profile = ProfileSource::kFile;
    c->profile_file = std::string(v);
  }
  return kOk;
}
std::string FormatProfile(const Cfg& c) {
  switch (c.profile) {
    case ProfileSource::kImage: return "";
    case ProfileSource::kNone: return "none";
    case ProfileSource::kFile: return c.profile_file;
  }
  return "";
}

// auto, off, or REGISTRY/REPO@DIGEST (an artifact pinned by digest).
std::string_view ParseAccel(std::string_view v, Spelling, Cfg* c) {
  constexpr std::string_view rule = "{auto}, {off} or an artifact REGISTRY/REPO@sha256:DIGEST";
  if (v != "auto" && v != "off") {
    auto ref = Reference::Parse(v);
    if (!ref.ok() || ref->digest.empty() || ref->transport != Reference::Transport::kDocker) return rule;
  }
  c->accel = std::string(v);
  return kOk;
}

constexpr auto R = OptionGroup::kRegistry;
constexpr auto L = OptionGroup::kLogging;
constexpr auto M = OptionGroup::kMount;

const MountOption kOptions[] = {
    {"creds", "", "", "USER:PASS", R, true, "USER:PASS for the registry (prefer --authfile: argv is visible)",
     ParseCreds, FormatText<&Cfg::creds>, nullptr},
    {"authfile", "authfile", "", "FILE", R, false, "containers auth.json or docker config.json",
     Text<&Cfg::authfile>, FormatText<&Cfg::authfile>, &Cfg::authfile},
    {"cert-dir", "cert_dir", "", "DIR", R, false, "directory of *.crt CAs and *.cert/*.key client certificates",
     Text<&Cfg::cert_dir>, FormatText<&Cfg::cert_dir>, &Cfg::cert_dir},
    {"tls-verify", "tls_verify", "tlsVerify", "BOOL", R, false,
     "false: accept an unverified certificate or plain HTTP (default true)", ParseTlsVerify,
     [](const Cfg& c) { return BoolText(c.tls_verify); }, nullptr},
    {"platform", "platform", "platform", "OS/ARCH[/VARIANT]", R, false,
     "which image of a multi-platform index (default: the host's)", Text<&Cfg::platform>,
     FormatText<&Cfg::platform>, nullptr},
    {"registries-conf", "registries_conf", "", "FILE", R, false,
     "containers-registries.conf(5): mirrors, rewrites, blocked registries (default /etc/containers/registries.conf)",
     Text<&Cfg::registries_conf>, FormatText<&Cfg::registries_conf>, &Cfg::registries_conf},
    {"stall-timeout", "stall_timeout", "", "SECONDS", R, false,
     "a request that receives nothing for this long is retried on a fresh connection (default 10)",
     Seconds<&Cfg::stall_timeout>, FormatSeconds<&Cfg::stall_timeout>, nullptr},
    {"registry-timeout", "registry_timeout", "", "SECONDS", R, false,
     "how long one registry request, retries included, may wait without progress (default 20)",
     Seconds<&Cfg::registry_timeout>, FormatSeconds<&Cfg::registry_timeout>, nullptr},
    {"log-level", "log_level", "", "LEVEL", L, false, "trace, debug, info, warn (default), error, off",
     Text<&Cfg::log_level>, FormatText<&Cfg::log_level>, nullptr},
    {"log-file", "log_file", "", "FILE", L, false, "write logs to this file instead of stderr",
     Text<&Cfg::log_file>, FormatText<&Cfg::log_file>, &Cfg::log_file},
    {"cache-dir", "cache_dir", "", "DIR", M, false, "chunk cache directory (default /var/cache/oci-fs as root)",
     Text<&Cfg::cache_dir>, FormatText<&Cfg::cache_dir>, &Cfg::cache_dir},
    {"mode", "mode", "mode", "disk|tree", M, false, "disk (default): DIR/disk.img; tree: the whole filesystem",
     ParseMode, [](const Cfg& c) { return std::string(c.mode == MountMode::kTree ? "tree" : "disk"); }, nullptr},
    {"disk-path", "disk_path", "diskPath", "PATH", M, false,
     "the disk file inside the image (default: the one file under disk/)", Text<&Cfg::disk_path>,
     FormatText<&Cfg::disk_path>, nullptr},
    {"disk", "disk", "disk", "NAME", M, false,
     "which disk of an artifact whose layers are disks (KubeVirt VM export, ORAS): its io.kubevirt.disk.name or "
     "title (default: the only one)",
     Text<&Cfg::disk_name>, FormatText<&Cfg::disk_name>, nullptr},
    {"cache-size", "cache_size", "", "SIZE", M, false, "bound of the chunk cache (default 10G)",
     Size<&Cfg::cache_size>, FormatSizeOf<&Cfg::cache_size>, nullptr},
    {"memory-cache", "memory_cache", "", "SIZE", M, false, "decompressed qcow2 clusters kept in memory (default 2M)",
     Size<&Cfg::memory_cache>, FormatSizeOf<&Cfg::memory_cache>, nullptr},
    {"chunk-size", "chunk_size", "", "SIZE", M, false,
     "bytes fetched and cached per chunk: a power of two, 64K..16M (default 1M)", Size<&Cfg::chunk_size>,
     FormatSizeOf<&Cfg::chunk_size>, nullptr},
    {"readahead", "readahead", "", "SIZE", M, false,
     "largest read-ahead window on sequential reads (default 4M; 0 = off)", Size<&Cfg::readahead>,
     FormatSizeOf<&Cfg::readahead>, nullptr},
    {"miss-fetch", "miss_fetch", "", "exact|chunk", M, false,
     "a small read of a chunk not cached fetches: exact (its own bytes, the chunk beside them; default) "
     "or chunk (waits for the whole chunk)",
     ParseMissFetch, [](const Cfg& c) { return std::string(c.miss_fetch == MissFetch::kChunk ? "chunk" : "exact"); },
     nullptr},
    {"decode-threads", "decode_threads", "", "N", M, false,
     "threads that decompress the pieces of one read side by side (default auto: one per core; 0 = none)",
     ParseDecodeThreads,
     [](const Cfg& c) { return c.decode_threads ? std::to_string(*c.decode_threads) : std::string("auto"); },
     nullptr},
    {"prefetch-all", "prefetch", "prefetchAll", "", M, false,
     "fetch the whole layer in the background, yielding to reads (-o prefetch=all|none)", ParsePrefetchAll,
     FormatSwitch<&Cfg::prefetch_all>, nullptr},
    {"prefetch-rate", "prefetch_rate", "prefetchRate", "RATE", M, false,
     "cap of --prefetch-all's fetching, bytes per second, e.g. 20M (default 0: no cap)",
     [](std::string_view v, Spelling how, Cfg* c) {
       std::string_view bad = Size<&Cfg::prefetch_rate>(v, how, c);
       return bad.empty() ? bad : std::string_view("bytes per second such as 20M");
     },
     FormatSizeOf<&Cfg::prefetch_rate>, nullptr},
    {"prefetch-profile", "prefetch_profile", "profile", "FILE|none", M, false,
     "fetch the chunks an access profile names ahead, in its order (docs/profile-format.md; default: the one "
     "the image ships, if any; none: no profile)",
     ParseProfile, FormatProfile, &Cfg::profile_file},
    {"accel", "accel", "accel", "auto|off|REF@DIGEST", M, false,
     "the acceleration artifact (docs/accel-format.md): auto (default) finds the one pushed next to the image "
     "by `oci-fs accelerate`, off uses none, REGISTRY/REPO@sha256:.. names one",
     ParseAccel, FormatText<&Cfg::accel>, nullptr},
    {"cluster-cache", "cluster_cache", "clusterCache", "on|off", M, false,
     "keep decompressed qcow2 clusters in the cache directory too, so refills and later mounts do not "
     "inflate them again: on (default) or off",
     ParseClusterCache,
     [](const Cfg& c) { return std::string(c.cluster_cache == ClusterCacheMode::kOn ? "on" : "off"); }, nullptr},
    {"record-profile", "record_profile", "", "FILE", M, false,
     "write the chunks this mount read, first read first, to FILE at unmount", Text<&Cfg::record_profile>,
     FormatText<&Cfg::record_profile>, &Cfg::record_profile},
    {"stats-file", "stats_file", "", "FILE", M, false, "write fetch counters as JSON here", Text<&Cfg::stats_file>,
     FormatText<&Cfg::stats_file>, &Cfg::stats_file},
    {"allow-other", "allow_other", "", "", M, false, "let other users read the mount (-o allow_other)",
     Switch<&Cfg::allow_other>, FormatSwitch<&Cfg::allow_other>, nullptr},
};

}  // namespace

std::span<const MountOption> MountOptions() { return kOptions; }

const MountOption* FindOption(std::string_view name) {
  for (const MountOption& o : kOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

std::string SpelledName(const MountOption& option, Spelling how) {
  switch (how) {
    case Spelling::kFlag: return "--" + std::string(option.name);
    case Spelling::kMountOption: return "-o " + std::string(option.key);
    case Spelling::kVolumeAttribute: return "volume attribute " + std::string(option.attribute);
  }
  return std::string(option.name);
}

Status Refusal(const Spelled& spelled, const MountOption& option, std::string_view expect) {
  const char quote = spelled.volume_attribute ? '"' : '\'';
  std::string message = spelled.option + " must be ";
  for (char ch : expect) {
    if (ch == '{' || ch == '}') {
      if (spelled.volume_attribute) message += quote;
    } else {
      message += ch;
    }
  }
  if (!option.secret) {
    message += ", not ";
    message += quote;
    message += spelled.value;
    message += quote;
  }
  return InvalidArgument(std::move(message));
}

}  // namespace ocifs
