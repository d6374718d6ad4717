// KeeperLink: a serving process's end of its keeper's channel
// (OCIFS_KEEPER_FD, docs/keeper.md). RunMount asks it what to do (mount,
// or take a connection over), reports the connection and readiness, and
// watches for the keeper's death: then it logs one line and serves on, so
// the mount lasts as long as this process.
//
// Thread safety: the calls before Watch from the mounting thread; Watch's
// task runs on the given scheduler; not copyable.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "fuse/keeper_channel.h"
#include "sched/scheduler.h"
#include "sched/task_group.h"

namespace ocifs {

class KeeperLink {
 public:
  // The link named by $OCIFS_KEEPER_FD (unset from the environment), or none.
  static std::unique_ptr<KeeperLink> FromEnvironment();
  explicit KeeperLink(UniqueFd socket) : socket_(std::move(socket)) {}
  KeeperLink(const KeeperLink&) = delete;
  KeeperLink& operator=(const KeeperLink&) = delete;
  ~KeeperLink();

  // 'M' (mount it yourself) or 'T' (take over: payload INIT, fd the device),
  // as received when the link was made. Once.
  [[nodiscard]] Result<KeeperMessage> ReceiveRole();
  [[nodiscard]] Status SendConnection(int fuse_fd, const std::string& init_request);
  [[nodiscard]] Status SendServing(const std::string& digest);
  void SendError(const Status& status);

  // Polls the channel every 500 ms on `scheduler`; once the keeper is gone,
  // logs an error naming `mountpoint`.
  void Watch(std::shared_ptr<Scheduler> scheduler, std::string mountpoint);
  // Cancels Watch's task (waits for it if it runs).
  void StopWatching() { tasks_.reset(); }

 private:
  void Tick();

  UniqueFd socket_;
  Result<KeeperMessage> role_ = Internal("no message from the keeper");
  std::string mountpoint_;
  std::unique_ptr<TaskGroup> tasks_;  // last: cancelled and waited for first
};

}  // namespace ocifs
