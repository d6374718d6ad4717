// FuseServer: serves an FsModel through libfuse's low-level API.
//
// The only place in oci-fs where a Status becomes an errno: a failed read is
// EIO (and logged with its cause), a write attempt EROFS.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

#include "base/latency_histogram.h"
#include "base/unique_fd.h"
#include "fuse/fs_model.h"
#include "ocifs/status.h"
#include "sched/scheduler.h"

struct fuse_session;

namespace ocifs {

// What this process's FUSE reads did (docs/mount-stats-format.md): reads
// answered, those answered with an error (EIO), bytes returned, and each
// read's latency from the request to the reply. Thread safety: atomics.
struct FuseReadStats {
  std::atomic<uint64_t> reads{0}, read_errors{0}, read_bytes{0};
  LatencyHistogram latency;

  // The last failed read's error and when (ms since the epoch); "" / 0 if none.
  void RecordError(const std::string& message);
  std::pair<std::string, int64_t> LastError() const;

 private:
  mutable std::mutex mu_;
  std::string last_error_;     // guarded by mu_
  int64_t last_error_ms_ = 0;  // guarded by mu_
};
FuseReadStats& GlobalFuseReadStats();

struct FuseServerOptions {
  // Runs the server's one timer (raising the mount's kernel readahead after
  // INIT) as a housekeeping task; null: Scheduler::Shared().
  std::shared_ptr<Scheduler> scheduler;
  bool allow_other = false;          // let other users (qemu as uid 107) read the mount
  unsigned max_threads = 16;         // FUSE worker threads
  unsigned max_read = 1u << 20;      // bytes per FUSE read request
  unsigned readahead_kib = 1024;     // kernel readahead on the mount (root only); 0 = kernel default
  double entry_timeout = 86400.0;    // seconds; the content never changes
  std::string fsname = "oci-fs";     // shown as the mount's source in /proc/mounts
  std::vector<std::string> extra_options;  // further `-o` options for libfuse (e.g. "noatime")
};

// Owns one FUSE session and its mount. Not copyable.
// Thread safety: Run() once from one thread; Exit() from any thread or a
// signal handler; the destructor unmounts if still mounted.
class FuseServer {
 public:
  // Mounts `model` read-only at `mountpoint`. On failure nothing is left mounted.
  [[nodiscard]] static Result<std::unique_ptr<FuseServer>> Mount(std::shared_ptr<const FsModel> model,
                                                                 const std::string& mountpoint,
                                                                 const FuseServerOptions& options);

  // Takes over a connection whose FUSE_INIT another process answered
  // (docs/keeper.md): `fuse_fd` is that connection's /dev/fuse descriptor and
  // `init_request` the kernel's raw INIT, which libfuse is fed again (its reply
  // goes to /dev/null) so the session negotiates exactly what the kernel
  // already agreed to. The server never unmounts: the keeper owns the mount.
  [[nodiscard]] static Result<std::unique_ptr<FuseServer>> Adopt(std::shared_ptr<const FsModel> model,
                                                                 UniqueFd fuse_fd, const std::string& init_request,
                                                                 const std::string& mountpoint,
                                                                 const FuseServerOptions& options);

  // After Mount, before Run: reads the kernel's FUSE_INIT from the device,
  // answers it through libfuse, and returns its raw bytes for later Adopts.
  [[nodiscard]] Result<std::string> CompleteInit();

  // The mount is no longer this process's to end: Run and the destructor do
  // not unmount (a keeper holds the connection).
  void ReleaseMount();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;
  ~FuseServer();

  // Serves requests with a pool of threads until the file system is unmounted
  // (umount, fusermount3 -u) or SIGTERM/SIGINT/SIGHUP arrive, then unmounts.
  [[nodiscard]] Status Run();

  // The /dev/fuse descriptor (for tests and diagnostics).
  int fd() const;

  struct State;  // session, model and options; defined in the .cc

 private:
  explicit FuseServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace ocifs
