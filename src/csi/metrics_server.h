// MetricsServer: serves GET /metrics (Prometheus text format 0.0.4) on a TCP
// address with cpp-httplib, for `oci-fs csi --metrics-address HOST:PORT`.
// The page comes from a callback, called on the server's threads for each
// request; anything else is 404.
//
// Thread safety: Start and the destructor from one thread. Lifetime: the
// destructor stops the server and joins its thread; the callback must stay
// valid until then. Owns one listening socket and one thread (plus
// cpp-httplib's worker pool, joined by stop()).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "ocifs/status.h"

namespace httplib {
class Server;
}

namespace ocifs {

struct MetricsAddress {
  std::string host;  // "127.0.0.1", "0.0.0.0", "::1" (without brackets)
  int port = 0;      // 0: any free port (tests)
};

// HOST:PORT or [V6HOST]:PORT; kInvalidArgument naming the address otherwise.
[[nodiscard]] Result<MetricsAddress> ParseMetricsAddress(const std::string& text);

class MetricsServer {
 public:
  using PageFn = std::function<std::string()>;
  // Binds (kUnavailable naming the address if it cannot) and starts serving.
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> Start(const MetricsAddress& address, PageFn page);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }  // the bound port

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace ocifs
