// KeeperChannel: the messages between a mount's keeper and its serving
// processes, over one SOCK_SEQPACKET unix socket (a socketpair the keeper
// makes for each server it starts, or the keeper's control socket).
//
// A message is one datagram: a tag byte, then a payload, and at most one
// file descriptor (SCM_RIGHTS). Tags (docs/keeper.md, "Protocol"):
//   keeper -> server  'M'            mount DIR yourself (the first server)
//                     'T' + INIT     take the connection over (+ /dev/fuse fd)
//   server -> keeper  'F' + INIT     the connection is up (+ /dev/fuse fd)
//                     'R' + digest   serving
//                     'E' + message  could not start
//   control client    'S' + binary   restart from this binary ("" = the keeper's)
//   keeper -> client  'O' + pid | 'E' + message
//
// Thread safety: free functions on a caller-owned socket; one reader and one
// writer at a time per socket.
#pragma once

#include <string>
#include <string_view>

#include "base/unique_fd.h"
#include "ocifs/status.h"

namespace ocifs {

struct KeeperMessage {
  char tag = 0;
  std::string payload;
  UniqueFd fd;  // the descriptor that came with it, if any
};

// Sends one message; `fd` >= 0 is passed along (the caller keeps its copy).
[[nodiscard]] Status SendKeeperMessage(int socket, char tag, std::string_view payload, int fd = -1);

// Receives one message, waiting at most `timeout_ms` (-1: no limit).
// kUnavailable when the peer closed its end, kCancelled on timeout.
[[nodiscard]] Result<KeeperMessage> ReceiveKeeperMessage(int socket, int timeout_ms);

// A connected pair of close-on-exec SEQPACKET sockets.
[[nodiscard]] Result<std::pair<UniqueFd, UniqueFd>> KeeperSocketPair();

// Connects to a keeper's control socket at `path`.
[[nodiscard]] Result<UniqueFd> ConnectKeeper(const std::string& path);

// Listens on `path` (removing a stale socket file first), close-on-exec.
[[nodiscard]] Result<UniqueFd> ListenKeeper(const std::string& path);

}  // namespace ocifs
