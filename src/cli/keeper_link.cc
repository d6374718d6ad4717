#include "cli/keeper_link.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace ocifs {

std::unique_ptr<KeeperLink> KeeperLink::FromEnvironment() {
  const char* text = std::getenv("OCIFS_KEEPER_FD");
  if (text == nullptr || *text == '\0') return nullptr;
  int fd = std::atoi(text);
  ::unsetenv("OCIFS_KEEPER_FD");
  if (fd < 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return nullptr;
  auto link = std::make_unique<KeeperLink>(UniqueFd(fd));
  // Read at once: a process that ends with a message unread makes the
  // keeper's next receive fail (ECONNRESET) before it sees our 'E'.
  link->role_ = ReceiveKeeperMessage(link->socket_.get(), 30000);
  return link;
}

KeeperLink::~KeeperLink() { tasks_.reset(); }

Result<KeeperMessage> KeeperLink::ReceiveRole() {
  Result<KeeperMessage> role = std::move(role_);
  role_ = Internal("the keeper's message was taken");
  if (!role.ok()) return role.status().WithContext("the keeper's first message");
  if (role->tag == 'M') return role;
  if (role->tag == 'T' && role->fd.valid()) return role;
  return Internal(std::string("unexpected keeper message '") + role->tag + "'");
}

Status KeeperLink::SendConnection(int fuse_fd, const std::string& init_request) {
  return SendKeeperMessage(socket_.get(), 'F', init_request, fuse_fd);
}

Status KeeperLink::SendServing(const std::string& digest) { return SendKeeperMessage(socket_.get(), 'R', digest); }

void KeeperLink::SendError(const Status& status) {
  Status s = SendKeeperMessage(socket_.get(), 'E', status.ToString());
  (void)s;
}

void KeeperLink::Watch(std::shared_ptr<Scheduler> scheduler, std::string mountpoint) {
  mountpoint_ = std::move(mountpoint);
  tasks_ = std::make_unique<TaskGroup>(std::move(scheduler), "keeper watch");
  Tick();
}

void KeeperLink::Tick() {
  tasks_->Post(TaskClass::kHousekeeping, [this] {
    pollfd p{socket_.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLIN))) {
      spdlog::error("oci-fs: the keeper of {} is gone: this process serves on, but no process takes over when "
                    "it ends (readers then get ENOTCONN)", mountpoint_);
      return;  // once
    }
    Tick();
  }, Scheduler::Clock::now() + std::chrono::milliseconds(500));
}

}  // namespace ocifs
