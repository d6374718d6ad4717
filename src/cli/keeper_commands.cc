#include "cli/keeper_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/self_executable.h"
#include "cli/common_flags.h"
#include "cli/status_stats.h"
#include "fuse/keeper.h"
#include "fuse/keeper_channel.h"
#include "fuse/mount_state.h"
#include "fuse/mount_stats.h"

namespace ocifs {
namespace {

std::string SelfBinary() {
  const std::string self = SelfExecutable();
  return self.empty() ? "/proc/self/exe" : self;
}

// `path` made absolute through its parent's realpath: the mount point
// itself is not looked at, so a mount whose server is being replaced does
// not hold `status` or `restart` up.
std::string Absolute(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path).lexically_normal();
  if (p.has_filename() == false) p = p.parent_path();
  char* real = ::realpath(p.parent_path().c_str(), nullptr);
  if (real == nullptr) return p.string();
  std::string out = std::string(real) + (std::string(real) == "/" ? "" : "/") + p.filename().string();
  std::free(real);
  return out;
}

nlohmann::json StatusJson(const MountState& s, const MountHealth& h) {
  int64_t uptime = std::max<int64_t>(0, static_cast<int64_t>(::time(nullptr)) - s.started);
  return {{"mountpoint", s.mountpoint},     {"reference", s.reference},   {"digest", s.digest},
          {"keeper_pid", s.keeper_pid},     {"server_pid", s.server_pid}, {"takeovers", s.takeovers},
          {"uptime_seconds", uptime},       {"binary", s.binary},         {"keeper_alive", h.keeper_alive},
          {"server_alive", h.server_alive}, {"mounted", h.mounted},       {"stale", h.stale()}};
}

}  // namespace

int RunKeeperCommand(const std::vector<std::string>& args) {
  KeeperOptions options;
  options.state_dir = MountStateDir();
  std::string log_level = "warn", log_file;
  size_t i = 2;
  for (; i < args.size() && args[i] != "--"; ++i) {
    const std::string& a = args[i];
    if (i + 1 >= args.size()) return Fail(InvalidArgument("keeper: " + a + " needs a value")), 2;
    const std::string& v = args[++i];
    if (a == "--mountpoint") options.mountpoint = v;
    else if (a == "--reference") options.reference = v;
    else if (a == "--binary") options.binary = v;
    else if (a == "--ready-fd") options.ready_fd = std::atoi(v.c_str());
    else if (a == "--log-level") log_level = v;
    else if (a == "--log-file") log_file = v;
    else return Fail(InvalidArgument("keeper: unknown option " + a)), 2;
  }
  if (i < args.size()) options.server_args.assign(args.begin() + static_cast<long>(i) + 1, args.end());
  if (options.mountpoint.empty() || options.binary.empty() || options.server_args.empty()) {
    return Fail(InvalidArgument("keeper: --mountpoint, --binary and the server's arguments are required")), 2;
  }
  if (options.ready_fd >= 0) ::fcntl(options.ready_fd, F_SETFD, FD_CLOEXEC);
  Status logging = ConfigureLogging(log_level, log_file);
  if (!logging.ok()) return Fail(logging);
  Keeper keeper(std::move(options));
  return keeper.Run();
}

int ExecKeeper(const std::vector<std::string>& mount_args, const std::string& reference,
               const std::string& mountpoint, const std::string& log_level, const std::string& log_file,
               int ready_fd) {
  std::string binary = SelfBinary();
  std::vector<std::string> argv = {binary, "keeper", "--mountpoint", mountpoint, "--reference", reference,
                                   "--binary", binary, "--log-level", log_level};
  if (!log_file.empty()) argv.insert(argv.end(), {"--log-file", log_file});
  if (ready_fd >= 0) {
    ::fcntl(ready_fd, F_SETFD, 0);  // inherited by the keeper
    argv.insert(argv.end(), {"--ready-fd", std::to_string(ready_fd)});
  }
  argv.push_back("--");
  argv.push_back("mount");
  argv.push_back("-f");
  for (size_t i = 2; i < mount_args.size(); ++i) {  // after "oci-fs mount"
    if (mount_args[i] != "-f" && mount_args[i] != "--foreground") argv.push_back(mount_args[i]);
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::execv(binary.c_str(), cargv.data());
  return Fail(ErrnoError("exec " + binary + " keeper", errno));
}

void AddStatusCommand(CLI::App* app, int* exit_code) {
  struct Flags {
    bool json = false;
    std::vector<std::string> dirs;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* sub = app->add_subcommand("status", "the kept mounts of this machine (keeper and serving pids, takeovers)");
  sub->add_flag("--json", flags->json, "one JSON array");
  sub->add_option("DIR", flags->dirs, "mount points (default: every one)");
  sub->callback([flags, exit_code] {
    std::string dir = MountStateDir();
    std::vector<MountState> states;
    if (flags->dirs.empty()) {
      states = ListMountStates(dir);
    } else {
      for (const std::string& d : flags->dirs) {
        auto s = LoadMountState(MountStatePath(dir, Absolute(d), ".json"));
        if (!s.ok()) {
          std::cerr << "oci-fs: " << d << " is not a kept oci-fs mount (no state in " << dir << ")\n";
          *exit_code = 1;
          continue;
        }
        states.push_back(std::move(s).value());
      }
    }
    nlohmann::json all = nlohmann::json::array();
    for (const MountState& s : states) {
      nlohmann::json j = StatusJson(s, CheckMountHealth(s));
      // What its serving processes published (docs/mount-stats-format.md); null if nothing yet.
      auto stats = SumMountStats(LoadMountStats(dir, s.mountpoint));
      j["stats"] = stats.ok() ? StatusStatsJson(*stats) : nlohmann::json(nullptr);
      all.push_back(std::move(j));
    }
    if (flags->json) {
      std::cout << all.dump() << "\n";
      return;
    }
    for (const auto& j : all) {
      std::cout << j["mountpoint"].get<std::string>() << (j["stale"].get<bool>() ? " (stale)" : "") << "\n"
                << "  image:     " << j["reference"].get<std::string>() << " " << j["digest"].get<std::string>() << "\n"
                << "  keeper:    " << j["keeper_pid"] << (j["keeper_alive"].get<bool>() ? "" : " (gone)") << "\n"
                << "  server:    " << j["server_pid"] << (j["server_alive"].get<bool>() ? "" : " (gone)") << "\n"
                << "  takeovers: " << j["takeovers"] << "\n"
                << "  uptime:    " << j["uptime_seconds"] << " s\n";
      if (!j["stats"].is_null()) std::cout << StatusStatsText(j["stats"], ::isatty(STDOUT_FILENO) == 1);
    }
  });
}

void AddRestartCommand(CLI::App* app, int* exit_code) {
  struct Flags {
    std::string binary;
    std::string dir;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* sub = app->add_subcommand("restart", "hand a kept mount to a new serving process (the binary on disk)");
  sub->add_option("--binary", flags->binary, "start the new server from this oci-fs (default: the mount's)");
  sub->add_option("DIR", flags->dir, "the mount point")->required();
  sub->callback([flags, exit_code] {
    std::string dir = MountStateDir();
    std::string mountpoint = Absolute(flags->dir);
    auto state = LoadMountState(MountStatePath(dir, mountpoint, ".json"));
    if (!state.ok() || !CheckMountHealth(*state).keeper_alive) {
      std::cerr << "oci-fs: " << flags->dir << " is not a kept oci-fs mount (see oci-fs status)\n";
      *exit_code = 2;
      return;
    }
    // Absolute but not resolved: /proc/PID/root/... must reach the keeper as
    // written (it names a binary in another mount namespace).
    std::string binary =
        flags->binary.empty() ? "" : std::filesystem::absolute(flags->binary).lexically_normal().string();
    auto socket = ConnectKeeper(state->socket);
    if (!socket.ok()) {
      *exit_code = Fail(socket.status());
      return;
    }
    Status sent = SendKeeperMessage(socket->get(), 'S', binary);
    auto reply = sent.ok() ? ReceiveKeeperMessage(socket->get(), 120000) : Result<KeeperMessage>(sent);
    if (!reply.ok()) {
      *exit_code = Fail(reply.status().WithContext("restart of " + mountpoint));
      return;
    }
    if (reply->tag != 'O') {
      *exit_code = Fail(Unavailable("restart of " + mountpoint + " failed: " + reply->payload));
      return;
    }
    std::cout << reply->payload << "\n";  // the new serving pid
  });
}

}  // namespace ocifs
