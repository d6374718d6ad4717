#include "fuse/keeper_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ocifs {
namespace {

constexpr size_t kMaxMessage = 64 * 1024;  // bytes; INIT records are ~100

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgument("socket path too long (" + std::to_string(path.size()) + " bytes): " + path);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

Status SendKeeperMessage(int socket, char tag, std::string_view payload, int fd) {
  std::string data(1, tag);
  data.append(payload);
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n >= 0) return Status::Ok();
    if (errno != EINTR) return ErrnoError("sending a keeper message", errno);
  }
}

Result<KeeperMessage> ReceiveKeeperMessage(int socket, int timeout_ms) {
  pollfd p{socket, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) break;
    if (r == 0) return Cancelled("no keeper message within " + std::to_string(timeout_ms) + " ms");
    if (errno != EINTR) return ErrnoError("waiting for a keeper message", errno);
  }
  std::vector<char> data(kMaxMessage);
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("receiving a keeper message", errno);
  KeeperMessage out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
      out.fd.reset(fd);
    }
  }
  if (n == 0) return Unavailable("the keeper channel was closed");
  out.tag = data[0];
  out.payload.assign(data.data() + 1, static_cast<size_t>(n) - 1);
  return out;
}

Result<std::pair<UniqueFd, UniqueFd>> KeeperSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return ErrnoError("socketpair", errno);
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

Result<UniqueFd> ConnectKeeper(const std::string& path) {
  OCIFS_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoError("connecting to the keeper at " + path, errno);
  }
  return fd;
}

Result<UniqueFd> ListenKeeper(const std::string& path) {
  OCIFS_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoError("binding the keeper socket " + path, errno);
  }
  if (::listen(fd.get(), 8) != 0) return ErrnoError("listen on " + path, errno);
  return fd;
}

}  // namespace ocifs
