// Keeper: the small process that holds a mount's /dev/fuse descriptor, so
// that the FUSE connection outlives the process serving it (docs/keeper.md).
//
// It starts serving processes (`oci-fs mount -f ...` exec'd from a binary on
// disk, with OCIFS_KEEPER_FD naming their end of a socketpair), receives the
// descriptor and the raw FUSE_INIT request from the first one, and hands both
// to every later one. When a server dies it writes FUSE_NOTIFY_RESEND (the
// kernel re-queues what the dead server had read but not answered) and starts
// another; `oci-fs restart` asks it, over its control socket, for a new
// server before the old one is told to stop. It never touches the network or
// an image: its only resources are the descriptor, sockets, child processes
// and the state file.
//
// Thread safety: single-threaded; Run() once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "fuse/mount_state.h"
#include "ocifs/status.h"

namespace ocifs {

struct KeeperOptions {
  std::string mountpoint;                // absolute
  std::string reference;                 // for the state file
  std::string binary;                    // servers are exec'd from here
  std::vector<std::string> server_args;  // argv[1..] of a server
  std::string state_dir;                 // MountStateDir() unless a test says otherwise
  int ready_fd = -1;                     // learns 'R' or 'E<message>' once the first server serves or fails
  std::chrono::seconds give_up_after{25};  // without a server this long, end the mount (readers get an error)
};

// `reference` pinned to the manifest `digest` the first server resolved
// ("reg/repo:tag" -> "reg/repo@sha256:..."), so a takeover serves the same
// image even if the tag moved; unchanged when it has a digest already, is
// an oci: layout, or digest is empty.
std::string PinnedReference(std::string_view reference, std::string_view digest);

class Keeper {
 public:
  explicit Keeper(KeeperOptions options);
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;
  ~Keeper();

  // Serves until the mount ends; the process's exit status.
  int Run();

 private:
  struct Server;  // one serving process: pid, channel, role

  Status StartServer(bool takeover, const std::string& binary);
  void OnServerMessage(Server* server);
  void OnServerExit(pid_t pid, int wait_status);
  void OnControlConnection();
  void ScheduleTakeover();
  void SendResend();
  void Unmount();
  void EndMount(int exit_code);
  void Publish();
  void ReportReady(const Status& status);
  bool ConnectionAlive() const;

  KeeperOptions options_;
  MountState state_;
  UniqueFd fuse_fd_;          // the connection; valid once the first server sent it
  std::string init_request_;  // the kernel's FUSE_INIT, raw
  UniqueFd signal_fd_;
  UniqueFd control_;          // listening
  UniqueFd restart_client_;   // waiting for the outcome of a restart
  std::unique_ptr<Server> current_;   // serving
  std::unique_ptr<Server> next_;      // starting: a takeover or a restart
  std::vector<pid_t> retiring_;       // told to stop after a restart
  std::optional<std::chrono::steady_clock::time_point> retry_at_;
  std::optional<std::chrono::steady_clock::time_point> serverless_since_;
  int failures_ = 0;          // consecutive servers that did not start
  bool resend_supported_ = true;
  bool done_ = false;
  int exit_code_ = 0;
};

}  // namespace ocifs
