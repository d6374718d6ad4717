#include "csi/csi_command.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "base/self_executable.h"
#include "csi/identity_service.h"
#include "csi/mount_cgroup.h"
#include "csi/metrics_registry.h"
#include "csi/metrics_server.h"
#include "csi/mount_launcher.h"
#include "csi/mount_watcher.h"
#include "csi/node_service.h"
#include "csi/volume_credentials.h"
#include "csi/volume_manager.h"
#include "csi/volume_store.h"

namespace ocifs {
namespace {

constexpr auto kWatchInterval = std::chrono::seconds(3);

// The watcher's period: kWatchInterval, or OCIFS_CSI_WATCH_SECONDS (tests
// that must see a dead mount before the watcher repairs it set it high).
std::chrono::seconds WatchInterval() {
  const char* text = std::getenv("OCIFS_CSI_WATCH_SECONDS");
  if (text == nullptr || *text == '\0') return kWatchInterval;
  long seconds = std::strtol(text, nullptr, 10);
  return seconds > 0 ? std::chrono::seconds(seconds) : kWatchInterval;
}

// The `oci-fs` beside this executable (oci-fs-csi, or a test's binary
// linking the plugin): the one the volumes' mounts run unless --oci-fs names
// another.
std::string SiblingOciFs() { return SiblingExecutable("oci-fs"); }

int Fail(const std::string& message) {
  std::fprintf(stderr, "oci-fs: %s\n", message.c_str());
  return 1;
}

}  // namespace

std::string SocketPathFromEndpoint(const std::string& endpoint) {
  std::string path;
  if (endpoint.rfind("unix://", 0) == 0) {
    path = endpoint.substr(7);
  } else if (endpoint.rfind("unix:", 0) == 0) {
    path = endpoint.substr(5);
  } else {
    return "";
  }
  return !path.empty() && path.front() == '/' ? path : "";
}

int RunCsiCommand(const CsiOptions& options) {
  const std::string socket_path = SocketPathFromEndpoint(options.endpoint);
  if (socket_path.empty()) {
    return Fail("csi: --endpoint must be unix:///ABSOLUTE/PATH.sock, not \"" + options.endpoint +
                "\"");
  }
  if (options.node_id.empty()) return Fail("csi: --node-id is required");

  VolumeStore store(options.state_dir);
  if (Status s = store.Init(); !s.ok()) return Fail("csi: state dir: " + s.ToString());

  MountCgroups cgroups(options.mount_cgroup);
  if (Status s = cgroups.Init(); !s.ok()) return Fail("csi: " + s.message());

  LauncherConfig config;
  config.cgroups = &cgroups;
  config.oci_fs_binary = options.oci_fs_binary.empty() ? SiblingOciFs() : options.oci_fs_binary;
  config.defaults.cache_dir = options.cache_dir;
  config.defaults.cert_dir = options.cert_dir;
  config.defaults.authfile = options.authfile;
  config.defaults.tls_verify = options.tls_verify;
  config.defaults.registries_conf = options.registries_conf;
  if (options.stall_timeout > 0) config.defaults.stall_timeout = options.stall_timeout;
  if (options.registry_timeout > 0) config.defaults.registry_timeout = options.registry_timeout;
  std::error_code cwd_error;
  MakePathsAbsolute(&config.defaults, std::filesystem::current_path(cwd_error).string());
  MountLauncher launcher(config);
  std::unique_ptr<CredentialProviders> providers;
  if (!options.image_credential_provider_config.empty()) {
    auto loaded = CredentialProviders::Load(options.image_credential_provider_config,
                                            options.image_credential_provider_bin_dir);
    if (!loaded.ok()) return Fail("csi: " + loaded.status().message());
    providers = std::move(loaded).value();
  } else if (!options.image_credential_provider_bin_dir.empty()) {
    return Fail("csi: --image-credential-provider-bin-dir needs --image-credential-provider-config");
  }
  VolumeCredentials credentials(&store, providers.get());
  VolumeManager manager(&store, &launcher, &credentials);
  // /metrics: the volumes' published counters, read at each scrape.
  MetricsRegistry metrics;
  std::unique_ptr<MetricsServer> metrics_server;
  if (!options.metrics_address.empty()) {
    auto address = ParseMetricsAddress(options.metrics_address);
    if (!address.ok()) return Fail("csi: " + address.status().message());
    auto started = MetricsServer::Start(*address, [&metrics, &manager] {
      return metrics.Render(manager.Samples(), PluginSample{manager.remounts()});
    });
    if (!started.ok()) return Fail("csi: " + started.status().message());
    metrics_server = std::move(started).value();
    spdlog::info("csi: serving /metrics on {}", options.metrics_address);
  }
  IdentityService identity(&manager);
  NodeService node(&manager, options.node_id);

  // Signals are taken by one thread with sigwait; block them everywhere else
  // (gRPC's threads inherit this mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(socket_path).parent_path(), ec);
  ::unlink(socket_path.c_str());  // a stale socket of a previous run
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(&identity);
  builder.RegisterService(&node);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Fail("csi: cannot listen on " + options.endpoint);
  ::chmod(socket_path.c_str(), 0660);
  spdlog::info("csi: {} serving on {} as node {} (state {}, oci-fs {}, mounts in {})", kDriverName,
               options.endpoint, options.node_id, options.state_dir, config.oci_fs_binary,
               cgroups.enabled() ? cgroups.root() : "the plugin's cgroup");

  std::thread recovery([&manager] { manager.Recover(); });
  std::thread signal_thread([&signals, &server] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("csi: signal {}: shutting down (mounts stay up)", sig);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  });
  {
    MountWatcher watcher(&manager, WatchInterval());
    server->Wait();
    recovery.join();
  }
  signal_thread.join();
  ::unlink(socket_path.c_str());
  return 0;
}

}  // namespace ocifs
