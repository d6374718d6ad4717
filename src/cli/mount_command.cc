#include "cli/mount_command.h"

#include <fcntl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/worker_pool.h"
#include "cache/access_profile.h"
#include "cache/chunk_cache.h"
#include "fuse/fuse_server.h"
#include "registry/fetch_stats.h"
#include "stack/image_stack.h"
#include "fuse/tree_model.h"

namespace ocifs {
namespace {

constexpr size_t kDecodeThreadsAuto = SIZE_MAX;
constexpr const char* kNoProfile = "none";  // --prefetch-profile none: not even the image's own

// --decode-threads: "auto" (kDecodeThreadsAuto) or a count 0..64.
Result<size_t> ParseDecodeThreads(const std::string& text) {
  if (text == "auto") return kDecodeThreadsAuto;
  size_t n = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  if (text.empty() || ec != std::errc() || ptr != end || n > 64) {
    return InvalidArgument("--decode-threads must be auto or a number from 0 to 64, not '" + text + "'");
  }
  return n;
}

std::vector<std::string> SplitOptions(const std::string& list) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '\\' && i + 1 < list.size()) {
      cur += list[++i];
    } else if (list[i] == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += list[i];
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

int64_t CreatedTime(const ResolvedImage& image) {
  if (image.config_json.is_object() && image.config_json.contains("created") &&
      image.config_json["created"].is_string()) {
    std::string created = image.config_json["created"].get<std::string>();
    struct tm tm{};
    if (strptime(created.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr) return timegm(&tm);
  }
  return 0;
}

// Writes the fetch counters as JSON, atomically.
void WriteStats(const std::string& path, const ImageStack& stack) {
  if (path.empty()) return;
  const FetchStats& fetch = GlobalFetchStats();
  nlohmann::json j = {{"blob_requests", fetch.blob_requests.load()},
                      {"blob_bytes", fetch.blob_bytes.load()},
                      {"manifest_requests", fetch.manifest_requests.load()}};
  if (stack.cache()) {
    ChunkCacheStats c = stack.cache()->stats();
    j["cache_hits"] = c.hits;
    j["cache_misses"] = c.misses;
    j["cache_evictions"] = c.evictions;
    j["cache_corrupt_dropped"] = c.corrupt_dropped;
    ImageStack::ClusterCacheStats clusters = stack.cluster_cache_stats();
    j["cluster_cache_hits"] = clusters.hits;
    j["cluster_cache_dropped"] = clusters.dropped;
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) spdlog::warn("cannot write stats to {}", path);
}

// Reports readiness (or the error) to the waiting parent through `fd`.
void Report(int fd, const Status& status) {
  if (fd < 0) return;
  std::string msg = status.ok() ? std::string("R") : "E" + status.ToString();
  ssize_t ignored = ::write(fd, msg.data(), msg.size());
  (void)ignored;
  ::close(fd);
}

// A daemon must not hold its caller's stdio: a caller reading our stderr to
// the end would wait until unmount. Logs go to --log-file (a spdlog sink).
void DetachStdio() {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return;
  ::dup2(null, STDIN_FILENO);
  ::dup2(null, STDOUT_FILENO);
  ::dup2(null, STDERR_FILENO);
  ::close(null);
}

// Runs the mount in this process; `ready_fd` (or -1) learns when it is ready.
int RunMount(const MountFlags& flags, const std::vector<std::string>& fuse_options, int ready_fd) {
  auto fail = [&](const Status& s) {
    if (ready_fd >= 0) {
      Report(ready_fd, s);
      return 1;
    }
    return Fail(s);
  };
  // Block SIGUSR1 before any thread starts, so that only the stats writer takes it.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  // A fixed mmap threshold: buffers of 128 KiB and more (chunks, decoded
  // segments, clusters) go back to the system when freed, rather than staying
  // in glibc's per-thread arenas (whose dynamic threshold grows to 32 MiB and
  // tripled the daemon's peak RSS); few arenas for the same reason.
  mallopt(M_MMAP_THRESHOLD, 128 << 10);
  mallopt(M_ARENA_MAX, 2);
  Status logging = ConfigureLogging(flags.common);
  if (!logging.ok()) return fail(logging);
  auto ref = Reference::Parse(flags.reference);
  if (!ref.ok()) return fail(ref.status());
  StackOptions options;
  auto registry = ToRegistryOptions(flags.common);
  if (!registry.ok()) return fail(registry.status());
  options.registry = *registry;
  options.cache_dir = flags.cache_dir.empty() ? DefaultCacheDir() : flags.cache_dir;
  auto cache_bytes = ParseSize(flags.cache_size);
  if (!cache_bytes.ok()) return fail(cache_bytes.status().WithContext("--cache-size"));
  options.cache_bytes = *cache_bytes;
  auto memory = ParseSize(flags.memory_cache);
  if (!memory.ok()) return fail(memory.status().WithContext("--memory-cache"));
  options.memory_cache_bytes = *memory;
  auto chunk = ParseSize(flags.chunk_size);
  if (!chunk.ok()) return fail(chunk.status().WithContext("--chunk-size"));
  options.chunk_size = static_cast<uint32_t>(*chunk);
  auto readahead = ParseSize(flags.readahead);
  if (!readahead.ok()) return fail(readahead.status().WithContext("--readahead"));
  options.blob_reads.readahead.max = *readahead;
  options.blob_reads.prefetch_all = flags.prefetch_all;
  options.blob_reads.exact_small_misses = flags.miss_fetch == "exact";
  options.cluster_cache = flags.cluster_cache == "on";
  auto rate = ParseSize(flags.prefetch_rate);
  if (!rate.ok()) return fail(rate.status().WithContext("--prefetch-rate"));
  options.blob_reads.prefetch_all_rate = *rate;
  auto decode_threads = ParseDecodeThreads(flags.decode_threads);
  if (!decode_threads.ok()) return fail(decode_threads.status());
  if (*decode_threads != kDecodeThreadsAuto) WorkerPool::SetDecodeThreads(*decode_threads);
  if (!flags.prefetch_profile.empty() && flags.prefetch_profile != kNoProfile) {
    auto profile = LoadAccessProfile(flags.prefetch_profile);
    if (!profile.ok()) return fail(profile.status().WithContext("--prefetch-profile"));
    options.blob_reads.profile = std::make_shared<const AccessProfile>(std::move(profile).value());
  }
  if (!flags.record_profile.empty()) options.blob_reads.recorder = std::make_shared<AccessRecorder>();
  options.disk_path = flags.disk_path;
  options.ready_at_disk_entry = flags.mode == "disk";

  auto stack = ImageStack::Open(*ref, options);
  if (!stack.ok()) return fail(stack.status());
  if (flags.prefetch_profile.empty()) {
    // A profile is a hint: a malformed one is reported, not fatal.
    auto shipped = (*stack)->StartShippedProfile();
    if (shipped.ok()) {
      spdlog::info("prefetching the access profile the image ships ({} chunks)", shipped->ChunkCount());
    } else if (shipped.status().code() != Code::kNotFound) {
      spdlog::warn("not using the image's access profile: {}", shipped.status().ToString());
    }
  }
  int64_t mtime = CreatedTime((*stack)->image());
  std::shared_ptr<FsModel> model;
  if (flags.mode == "tree") {
    auto tree = BuildTreeModel(**stack, mtime);
    if (!tree.ok()) return fail(tree.status());
    model = std::make_shared<FsModel>(std::move(tree).value());
  } else {
    auto disk = (*stack)->OpenDisk();
    if (!disk.ok()) return fail(disk.status());
    model = std::make_shared<FsModel>(FsModel::SingleFile("disk.img", *disk, mtime));
  }

  FuseServerOptions fuse;
  fuse.allow_other = flags.allow_other;
  fuse.fsname = (*ref).ToString();
  fuse.extra_options = fuse_options;
  auto server = FuseServer::Mount(model, flags.mountpoint, fuse);
  if (!server.ok()) return fail(server.status());
  spdlog::info("mounted {} ({}) at {}", (*stack)->image().reference.ToString(), (*stack)->image().manifest_digest,
               flags.mountpoint);
  if (ready_fd >= 0) {
    Report(ready_fd, Status::Ok());
    DetachStdio();
  }

  // SIGUSR1 (blocked in every thread since RunMount began) asks for the
  // counters now; they are also written every second and at the end.
  std::atomic<bool> done{false};
  std::thread stats_writer;
  if (!flags.stats_file.empty()) {
    stats_writer = std::thread([&] {
      sigset_t usr1;
      sigemptyset(&usr1);
      sigaddset(&usr1, SIGUSR1);
      const timespec tick{0, 200 * 1000 * 1000};
      int ticks = 0;
      while (!done.load()) {
        int sig = sigtimedwait(&usr1, nullptr, &tick);
        if (sig == SIGUSR1 || ++ticks % 5 == 0) WriteStats(flags.stats_file, **stack);
      }
    });
  }
  Status run = (*server)->Run();
  server->reset();
  (*stack)->FlushClusterCache();
  done.store(true);
  if (stats_writer.joinable()) stats_writer.join();
  WriteStats(flags.stats_file, **stack);
  spdlog::info("unmounted {}", flags.mountpoint);
  if (options.blob_reads.recorder && (*stack)->cache()) {
    AccessProfile profile = options.blob_reads.recorder->Snapshot();
    Status saved = SaveAccessProfile(flags.record_profile, profile);
    if (saved.ok()) {
      spdlog::info("wrote the access profile {} ({} chunks)", flags.record_profile, profile.ChunkCount());
    } else {
      spdlog::error("cannot write the access profile: {}", saved.ToString());
    }
  }
  if (!run.ok()) {
    spdlog::error("{}", run.ToString());
    return 1;
  }
  return 0;
}

// Forks; the child mounts and serves, the parent returns once the child
// reports the mount ready (0) or failed (1, with the child's message).
int Daemonize(const MountFlags& flags, const std::vector<std::string>& fuse_options) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe", errno));
  std::cout.flush();
  std::cerr.flush();
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork", errno));
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    if (::chdir("/") != 0) {}
    ::_exit(RunMount(flags, fuse_options, fds[1]));
  }
  ::close(fds[1]);
  std::string msg;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (!msg.empty() && msg[0] == 'R') return 0;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (msg.size() > 1 && msg[0] == 'E') {
    std::cerr << "oci-fs: " << msg.substr(1) << std::endl;
  } else {
    std::cerr << "oci-fs: the mount process died before the mount was ready";
    if (WIFSIGNALED(status)) std::cerr << " (signal " << WTERMSIG(status) << ")";
    std::cerr << std::endl;
  }
  return 1;
}

}  // namespace

std::string DefaultCacheDir() {
  if (::geteuid() == 0) return "/var/cache/oci-fs";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/oci-fs";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/tmp") + "/.cache/oci-fs";
}

Status ApplyMountOptions(MountFlags* flags, std::vector<std::string>* fuse_options) {
  static const char* kIgnored[] = {"rw", "ro", "defaults", "auto", "noauto", "user", "users", "nouser",
                                   "_netdev", "nofail", "relatime", "strictatime", "dev", "suid", "exec",
                                   "async", "sync", "atime", "default_permissions"};
  static const char* kForwarded[] = {"nodev", "nosuid", "noexec", "noatime", "nodiratime", "auto_unmount"};
  for (const std::string& list : flags->options) {
    for (const std::string& opt : SplitOptions(list)) {
      size_t eq = opt.find('=');
      std::string key = opt.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
      if (key == "allow_other") flags->allow_other = true;
      else if (key == "tls_verify") flags->common.tls_verify = value.empty() ? "true" : value;
      else if (key == "cache_dir") flags->cache_dir = value;
      else if (key == "cache_size") flags->cache_size = value;
      else if (key == "memory_cache") flags->memory_cache = value;
      else if (key == "chunk_size") flags->chunk_size = value;
      else if (key == "readahead") flags->readahead = value;
      else if (key == "decode_threads") flags->decode_threads = value;
      else if (key == "miss_fetch") flags->miss_fetch = value;
      else if (key == "cluster_cache") flags->cluster_cache = value;
      else if (key == "prefetch" && (value == "all" || value == "none")) flags->prefetch_all = value == "all";
      else if (key == "prefetch_rate") flags->prefetch_rate = value;
      else if (key == "prefetch") return InvalidArgument("prefetch must be all or none, not '" + value + "'");
      else if (key == "authfile") flags->common.authfile = value;
      else if (key == "cert_dir") flags->common.cert_dir = value;
      else if (key == "platform") flags->common.platform = value;
      else if (key == "disk_path") flags->disk_path = value;
      else if (key == "mode") flags->mode = value;
      else if (key == "stats_file") flags->stats_file = value;
      else if (key == "prefetch_profile") flags->prefetch_profile = value;
      else if (key == "record_profile") flags->record_profile = value;
      else if (key == "log_file") flags->common.log_file = value;
      else if (key == "log_level") flags->common.log_level = value;
      else if (key.rfind("x-", 0) == 0 || key.rfind("comment", 0) == 0) continue;
      else if (std::find(std::begin(kIgnored), std::end(kIgnored), key) != std::end(kIgnored)) continue;
      else if (std::find(std::begin(kForwarded), std::end(kForwarded), key) != std::end(kForwarded)) {
        fuse_options->push_back(opt);
      } else {
        return InvalidArgument("unknown mount option '" + key + "'");
      }
    }
  }
  if (flags->miss_fetch != "exact" && flags->miss_fetch != "chunk") {
    return InvalidArgument("--miss-fetch must be exact or chunk, not '" + flags->miss_fetch + "'");
  }
  if (flags->cluster_cache != "on" && flags->cluster_cache != "off") {
    return InvalidArgument("--cluster-cache must be on or off, not '" + flags->cluster_cache + "'");
  }
  if (flags->mode != "disk" && flags->mode != "tree") {
    return InvalidArgument("--mode must be disk or tree, not '" + flags->mode + "'");
  }
  return Status::Ok();
}

void AddMountCommand(CLI::App* app, MountFlags* flags, int* exit_code) {
  CLI::App* sub = app->add_subcommand("mount", "mount an image's VM disk (DIR/disk.img) or its whole tree");
  AddCommonFlags(sub, &flags->common);
  sub->add_option("REF", flags->reference, "image reference")->required();
  sub->add_option("DIR", flags->mountpoint, "mount point (an existing directory)")->required();
  sub->add_flag("-f,--foreground", flags->foreground, "stay in the foreground");
  sub->add_option("--mode", flags->mode, "disk (default) or tree");
  sub->add_option("--disk-path", flags->disk_path, "the disk file inside the image (default: the one file under disk/)");
  sub->add_option("--cache-dir", flags->cache_dir, "chunk cache directory (default " + DefaultCacheDir() + ")");
  sub->add_option("--cache-size", flags->cache_size, "bound of the chunk cache (default 10G)");
  sub->add_option("--memory-cache", flags->memory_cache, "decompressed qcow2 clusters kept in memory (default 8M)");
  sub->add_option("--chunk-size", flags->chunk_size,
                  "bytes fetched and cached per chunk: a power of two, 64K..16M (default 1M)");
  sub->add_option("--readahead", flags->readahead, "largest read-ahead window on sequential reads (default 4M; 0 = off)");
  sub->add_option("--miss-fetch", flags->miss_fetch,
                  "a small read of a chunk not cached fetches: exact (its own bytes, the chunk beside them; "
                  "default) or chunk (waits for the whole chunk)");
  sub->add_option("--cluster-cache", flags->cluster_cache,
                  "keep decompressed qcow2 clusters in the cache directory too, so refills and later mounts "
                  "do not inflate them again: on (default) or off");
  sub->add_option("--decode-threads", flags->decode_threads,
                  "threads that decompress the pieces of one read side by side (default auto: one per core; 0 = none)");
  sub->add_flag("--prefetch-all", flags->prefetch_all, "fetch the whole layer in the background, yielding to reads");
  sub->add_option("--prefetch-rate", flags->prefetch_rate,
                  "cap of --prefetch-all's fetching, bytes per second, e.g. 20M (default 0: no cap)");
  sub->add_option("--stats-file", flags->stats_file, "write fetch counters as JSON here");
  sub->add_option("--prefetch-profile", flags->prefetch_profile,
                  "fetch the chunks an access profile names ahead, in its order (docs/profile-format.md; "
                  "default: the one the image ships, if any; none: no profile)");
  sub->add_option("--record-profile", flags->record_profile,
                  "write the chunks this mount read, first read first, to FILE at unmount");
  sub->add_flag("--allow-other", flags->allow_other, "let other users read the mount");
  sub->add_option("-o", flags->options, "mount options, comma-separated (see docs/cli.md)");
  sub->callback([flags, exit_code] {
    std::vector<std::string> fuse_options;
    Status s = ApplyMountOptions(flags, &fuse_options);
    if (s.ok()) s = ParseSize(flags->cache_size).status().WithContext("--cache-size");
    if (s.ok()) s = ParseSize(flags->memory_cache).status().WithContext("--memory-cache");
    if (s.ok()) {
      auto chunk = ParseSize(flags->chunk_size);
      s = chunk.status().WithContext("--chunk-size");
      if (s.ok() && !ChunkCache::ValidChunkSize(*chunk)) {
        s = InvalidArgument("--chunk-size must be a power of two from 64K to 16M, not " + flags->chunk_size);
      }
    }
    if (s.ok()) s = ParseSize(flags->readahead).status().WithContext("--readahead");
    if (s.ok()) s = ParseSize(flags->prefetch_rate).status().WithContext("--prefetch-rate");
    if (s.ok()) s = ParseDecodeThreads(flags->decode_threads).status();
    if (!s.ok()) {
      Fail(s);
      *exit_code = 2;  // a usage error
      return;
    }
    struct stat st;
    if (::stat(flags->mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      *exit_code = Fail(InvalidArgument("mount point " + flags->mountpoint + " is not a directory"));
      return;
    }
    // The daemon works from "/": every path it keeps must be absolute.
    if (char* real = ::realpath(flags->mountpoint.c_str(), nullptr); real != nullptr) {
      flags->mountpoint = real;
      std::free(real);
    }
    for (std::string* path : {&flags->cache_dir, &flags->stats_file, &flags->prefetch_profile,
                              &flags->record_profile, &flags->common.log_file,
                              &flags->common.authfile, &flags->common.cert_dir}) {
      if (!path->empty() && !(path == &flags->prefetch_profile && *path == kNoProfile)) {
        *path = std::filesystem::absolute(*path).lexically_normal().string();
      }
    }
    if (flags->foreground) {
      // Background indexing threads may still run: end without static destructors.
      int rc = RunMount(*flags, fuse_options, -1);
      std::cout.flush();
      std::cerr.flush();
      ::_exit(rc);
    }
    *exit_code = Daemonize(*flags, fuse_options);
  });
}

}  // namespace ocifs
