#include "cli/mount_command.h"

#include <fcntl.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/unique_fd.h"
#include "cache/access_profile.h"
#include "cache/chunk_cache.h"
#include "cli/keeper_commands.h"
#include "cli/keeper_link.h"
#include "cli/mount_stats_publisher.h"
#include "cli/prefetch_progress.h"
#include "fuse/mount_state.h"
#include "fuse/fuse_server.h"
#include "registry/fetch_stats.h"
#include "sched/task_group.h"
#include "stack/image_stack.h"
#include "fuse/tree_model.h"

namespace ocifs {
namespace {

// `-o nokeeper` (mount(8)'s spelling of --no-keeper): taken out of the option
// lists, which go to the option table; true if any list had it.
bool TakeNoKeeperOption(std::vector<std::string>* lists) {
  bool found = false;
  for (std::string& list : *lists) {
    std::string kept;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = std::min(list.find(',', start), list.size());
      std::string item = list.substr(start, end - start);
      if (item == "nokeeper") {
        found = true;
      } else if (!item.empty()) {
        kept += (kept.empty() ? "" : ",") + item;
      }
      start = end + 1;
    }
    list = kept;
  }
  std::erase_if(*lists, [](const std::string& l) { return l.empty(); });
  return found;
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
  const FuseReadStats& fuse = GlobalFuseReadStats();
  nlohmann::json j = {{"blob_requests", fetch.blob_requests.load()},
                      {"blob_bytes", fetch.blob_bytes.load()},
                      {"manifest_requests", fetch.manifest_requests.load()},
                      {"fuse_reads", fuse.reads.load()},
                      {"fuse_read_bytes", fuse.read_bytes.load()}};
  if (stack.cache()) {
    ChunkCacheStats c = stack.cache()->stats();
    j["cache_hits"] = c.hits;
    j["cache_misses"] = c.misses;
    j["cache_evictions"] = c.evictions;
    j["cache_corrupt_dropped"] = c.corrupt_dropped;
    j["cache_lease_waits"] = c.lease_waits;
    j["cache_lease_timeouts"] = c.lease_timeouts;
    ImageStack::ClusterCacheStats clusters = stack.cluster_cache_stats();
    j["cluster_cache_hits"] = clusters.hits;
    j["cluster_cache_dropped"] = clusters.dropped;
    j["cluster_cache_kept"] = clusters.kept;
    j["cluster_cache_claim_waits"] = clusters.claim_waits;
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

// Stops the scheduler when it goes out of scope: declared after the stack,
// so every task has ended before the stages they use are destroyed.
struct StopAtExit {
  Scheduler* scheduler;
  ~StopAtExit() { scheduler->Stop(); }
};

// Writes the stats file every second and when SIGUSR1 arrives (read from a
// signalfd every 200 ms), as a housekeeping task of the mount's scheduler.
class StatsTimer {
 public:
  StatsTimer(std::shared_ptr<Scheduler> scheduler, std::string path, const ImageStack& stack)
      : path_(std::move(path)), stack_(stack), tasks_(std::move(scheduler), "stats file") {
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    signal_fd_.reset(::signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC));
    Tick();
  }

 private:
  void Tick() {
    tasks_.Post(TaskClass::kHousekeeping, [this] {
      signalfd_siginfo info;
      bool asked = false;
      while (signal_fd_.get() >= 0 && ::read(signal_fd_.get(), &info, sizeof info) == sizeof info) asked = true;
      if (asked || ++ticks_ % 5 == 0) WriteStats(path_, stack_);
      Tick();
    }, Scheduler::Clock::now() + std::chrono::milliseconds(200));
  }

  const std::string path_;
  const ImageStack& stack_;
  UniqueFd signal_fd_;
  int ticks_ = 0;    // touched by one task at a time
  TaskGroup tasks_;  // last: cancelled and waited for first
};

// Mounts `model` (or takes the connection over when the keeper says so).
Result<std::unique_ptr<FuseServer>> ServeModel(std::shared_ptr<FsModel> model, const std::string& mountpoint,
                                               const FuseServerOptions& fuse, KeeperLink* keeper) {
  if (keeper == nullptr) return FuseServer::Mount(std::move(model), mountpoint, fuse);
  OCIFS_ASSIGN_OR_RETURN(KeeperMessage role, keeper->ReceiveRole());
  if (role.tag == 'T') return FuseServer::Adopt(std::move(model), std::move(role.fd), role.payload, mountpoint, fuse);
  OCIFS_ASSIGN_OR_RETURN(auto server, FuseServer::Mount(std::move(model), mountpoint, fuse));
  OCIFS_ASSIGN_OR_RETURN(std::string init, server->CompleteInit());
  OCIFS_RETURN_IF_ERROR(keeper->SendConnection(server->fd(), init));
  server->ReleaseMount();  // the keeper holds the connection now
  return server;
}

// Runs the mount in this process; `ready_fd` (or -1) learns when it is ready;
// `keeper` (or null) is the keeper this process serves for.
int RunMount(const MountFlags& flags, const MountConfig& config, int ready_fd, KeeperLink* keeper) {
  auto fail = [&](const Status& s) {
    if (keeper != nullptr) keeper->SendError(s);
    if (ready_fd >= 0) {
      Report(ready_fd, s);
      return 1;
    }
    return Fail(s);
  };
  // Block SIGUSR1 before any thread starts: the stats timer takes it from a signalfd.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  // A fixed mmap threshold of 4 MiB: the buffers of the read path (1 MiB
  // chunks, fetch runs, decoded spans) are reused from the heap instead of
  // being mapped and unmapped each time (at 128 KiB, page faults and munmap
  // took three quarters of the daemon's CPU on a cold gzip boot: 11 s of CPU
  // against 3.4 s, docs/benchmarks.md); larger ones go back to the system
  // when freed, and the heap keeps at most 2 MiB free at its top (16 MiB
  // saved another second of CPU for 8 MiB more peak RSS). Fixed
  // rather than glibc's dynamic threshold (which grows to 32 MiB and tripled
  // the peak RSS), and few arenas, for the same reason.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 2 << 20);
  mallopt(M_ARENA_MAX, 2);
  Status logging = ConfigureLogging(config.log_level, config.log_file);
  if (!logging.ok()) return fail(logging);
  auto ref = Reference::Parse(flags.reference);
  if (!ref.ok()) return fail(ref.status());
  auto stack_options = ToStackOptions(config);
  if (!stack_options.ok()) return fail(stack_options.status());
  // The one owner of the mount's background work, stopped on every way out
  // of this function before the stages it serves are destroyed.
  SchedulerOptions scheduler_options;
  if (config.decode_threads) scheduler_options.decode_threads = *config.decode_threads;
  auto scheduler = std::make_shared<Scheduler>(scheduler_options);
  stack_options->scheduler = scheduler;
  const StackOptions& options = *stack_options;

  auto stack = ImageStack::Open(*ref, options);
  StopAtExit stop_background{scheduler.get()};  // declared after the stack: runs before its destructor
  if (!stack.ok()) return fail(stack.status());
  if (config.profile == ProfileSource::kImage && !(*stack)->accel().profile) {
    // A profile is a hint: a malformed one is reported, not fatal. The
    // acceleration artifact's, started at Open, comes first.
    auto shipped = (*stack)->StartShippedProfile();
    if (shipped.ok()) {
      spdlog::info("prefetching the access profile the image ships ({} chunks)", shipped->ChunkCount());
    } else if (shipped.status().code() != Code::kNotFound) {
      spdlog::warn("not using the image's access profile: {}", shipped.status().ToString());
    }
  }
  int64_t mtime = CreatedTime((*stack)->image());
  std::shared_ptr<FsModel> model;
  if (config.mode == MountMode::kTree) {
    auto tree = BuildTreeModel(**stack, mtime);
    if (!tree.ok()) return fail(tree.status());
    model = std::make_shared<FsModel>(std::move(tree).value());
  } else {
    auto disk = (*stack)->OpenDisk();
    if (!disk.ok()) return fail(disk.status());
    model = std::make_shared<FsModel>(FsModel::SingleFile("disk.img", *disk, mtime));
  }

  FuseServerOptions fuse;
  fuse.scheduler = scheduler;
  fuse.allow_other = config.allow_other;
  fuse.fsname = (*ref).ToString();
  fuse.extra_options = config.fuse_options;
  auto server = ServeModel(model, flags.mountpoint, fuse, keeper);
  if (!server.ok()) return fail(server.status());
  spdlog::info("mounted {} ({}) at {}", (*stack)->image().reference.ToString(), (*stack)->image().manifest_digest,
               flags.mountpoint);
  if (keeper != nullptr) {
    if (Status s = keeper->SendServing((*stack)->image().manifest_digest); !s.ok()) return fail(s);
    keeper->Watch(scheduler, flags.mountpoint);
    // The first server of a daemonized mount held the caller's stderr for its startup messages.
    if (std::getenv("OCIFS_KEEPER_DETACH") != nullptr) {
      ::unsetenv("OCIFS_KEEPER_DETACH");
      DetachStdio();
    }
  }
  if (ready_fd >= 0) {
    Report(ready_fd, Status::Ok());
    DetachStdio();
  }

  // SIGUSR1 (blocked in every thread since RunMount began) asks for the
  // counters now; they are also written every second and at the end.
  std::optional<StatsTimer> stats_timer;
  if (!config.stats_file.empty()) stats_timer.emplace(scheduler, config.stats_file, **stack);
  // A kept mount's serving process publishes its counters beside the state file.
  std::optional<MountStatsPublisher> published;
  if (keeper != nullptr) {
    published.emplace(scheduler, MountStateDir(), flags.mountpoint, flags.reference, config.prefetch_all, **stack);
  }
  // A foreground mount shows how far --prefetch-all got on its stderr.
  std::optional<PrefetchProgress> prefetch_progress;
  if (flags.foreground && config.prefetch_all) prefetch_progress.emplace(scheduler, **stack);
  Status run = (*server)->Run();
  server->reset();
  if (keeper != nullptr) keeper->StopWatching();  // before the scheduler stops
  prefetch_progress.reset();
  stats_timer.reset();
  published.reset();
  // Unmounted cleanly: no read comes any more; store what the reads were
  // owed (the rest of the chunks they were served around), then drop the hints.
  if (run.ok()) (*stack)->FinishOwedFetches();
  scheduler->Stop();
  WriteStats(config.stats_file, **stack);
  spdlog::info("unmounted {}", flags.mountpoint);
  if (options.blob_reads.recorder && (*stack)->cache()) {
    AccessProfile profile = options.blob_reads.recorder->Snapshot();
    Status saved = SaveAccessProfile(config.record_profile, profile);
    if (saved.ok()) {
      spdlog::info("wrote the access profile {} ({} chunks)", config.record_profile, profile.ChunkCount());
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
int Daemonize(const MountFlags& flags, const MountConfig& config, bool* in_child) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoError("pipe", errno));
  std::cout.flush();
  std::cerr.flush();
  pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork", errno));
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    *in_child = true;  // returns through main, and the process ends through its destructors
    if (!flags.no_keeper) {  // the keeper stays in the caller's directory: the arguments may name relative paths
      // Until the mount is ready the keeper and its first server keep the
      // caller's stderr (startup warnings), then let it go; never stdin or stdout.
      if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
        ::close(null);
      }
      ExecKeeper(flags.argv, flags.reference, flags.mountpoint, config.log_level, config.log_file, fds[1]);
      Report(fds[1], Internal("cannot start the keeper"));
      return 1;
    }
    if (::chdir("/") != 0) {}
    return RunMount(flags, config, fds[1], nullptr);
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

void AddMountOptions(CLI::App* app, MountFlags* flags) {
  for (const MountOption& option : MountOptions()) {
    const std::string flag = "--" + std::string(option.name);
    if (option.value_name.empty()) {
      app->add_flag_function(
          flag, [flags, &option](int64_t) { flags->given.emplace_back(&option, "true"); }, std::string(option.help));
    } else {
      app->add_option_function<std::string>(
             flag, [flags, &option](const std::string& value) { flags->given.emplace_back(&option, value); },
             std::string(option.help))
          ->type_name(std::string(option.value_name));
    }
  }
  app->add_option("-o", flags->options, "mount options, comma-separated (see docs/cli.md)");
}

Result<MountConfig> BuildMountConfig(const MountFlags& flags, const std::string& cwd) {
  MountConfigBuilder builder;
  for (const auto& [option, value] : flags.given) {
    OCIFS_RETURN_IF_ERROR(builder.Set(*option, Spelling::kFlag, value));
  }
  for (const std::string& list : flags.options) OCIFS_RETURN_IF_ERROR(builder.ApplyMountOptions(list));
  return builder.Build(cwd);
}

Result<StackOptions> ToStackOptions(const MountConfig& config) {
  StackOptions options;
  options.registry = ToRegistryOptions(config);
  options.cache_dir = config.cache_dir.empty() ? DefaultCacheDir() : config.cache_dir;
  options.cache_bytes = config.cache_size;
  options.memory_cache_bytes = config.memory_cache;
  options.chunk_size = static_cast<uint32_t>(config.chunk_size);  // Validate: at most 16M
  options.cluster_cache = config.cluster_cache == ClusterCacheMode::kOn;
  options.blob_reads.readahead.max = config.readahead;
  options.blob_reads.prefetch_all = config.prefetch_all;
  options.blob_reads.prefetch_all_rate = config.prefetch_rate;
  options.blob_reads.exact_small_misses = config.miss_fetch == MissFetch::kExact;
  if (config.profile == ProfileSource::kFile) {
    auto profile = LoadAccessProfile(config.profile_file);
    if (!profile.ok()) return profile.status().WithContext("--prefetch-profile");
    options.blob_reads.profile = std::make_shared<const AccessProfile>(std::move(profile).value());
  }
  if (!config.record_profile.empty()) options.blob_reads.recorder = std::make_shared<AccessRecorder>();
  options.disk_path = config.disk_path;
  options.disk_name = config.disk_name;
  options.ready_at_disk_entry = config.mode == MountMode::kDisk;
  OCIFS_ASSIGN_OR_RETURN(options.accel, AccelChoice::Parse(config.accel));
  options.accel_profile = config.profile == ProfileSource::kImage;
  return options;
}

void AddMountCommand(CLI::App* app, MountFlags* flags, int* exit_code) {
  CLI::App* sub = app->add_subcommand("mount", "mount an image's VM disk (DIR/disk.img) or its whole tree");
  sub->add_option("REF", flags->reference, "image reference")->required();
  sub->add_option("DIR", flags->mountpoint, "mount point (an existing directory)")->required();
  sub->add_flag("-f,--foreground", flags->foreground, "stay in the foreground");
  sub->add_flag("--no-keeper", flags->no_keeper, "serve in one process, without a keeper (docs/keeper.md)");
  AddMountOptions(sub, flags);
  sub->callback([flags, exit_code] {
    if (TakeNoKeeperOption(&flags->options)) flags->no_keeper = true;
    std::error_code ec;
    // The daemon works from "/": every path it keeps is made absolute here.
    auto config = BuildMountConfig(*flags, std::filesystem::current_path(ec).string());
    if (!config.ok()) {
      Fail(config.status());
      *exit_code = 2;  // a usage error
      return;
    }
    if (auto keeper = KeeperLink::FromEnvironment(); keeper != nullptr) {
      // A keeper's serving process: DIR is absolute and may be the mount it
      // takes over, which nobody answers yet; not even stat() it.
      *exit_code = RunMount(*flags, *config, -1, keeper.get());
      return;
    }
    struct stat st;
    if (::stat(flags->mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      *exit_code = Fail(InvalidArgument("mount point " + flags->mountpoint + " is not a directory"));
      return;
    }
    const std::string given = flags->mountpoint;
    if (char* real = ::realpath(flags->mountpoint.c_str(), nullptr); real != nullptr) {
      flags->mountpoint = real;
      std::free(real);
    }
    // A keeper's servers get the same command line, with DIR absolute.
    if (auto it = std::find(flags->argv.rbegin(), flags->argv.rend(), given); it != flags->argv.rend()) {
      *it = flags->mountpoint;
    }
    if (flags->foreground) {
      if (!flags->no_keeper) {  // this process becomes the keeper
        *exit_code = ExecKeeper(flags->argv, flags->reference, flags->mountpoint, config->log_level,
                                config->log_file, -1);
        return;
      }
      *exit_code = RunMount(*flags, *config, -1, nullptr);
      return;
    }
    bool in_child = false;
    *exit_code = Daemonize(*flags, *config, &in_child);
  });
}

}  // namespace ocifs
