#include "csi/metrics_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>

namespace ocifs {

Result<MetricsAddress> ParseMetricsAddress(const std::string& text) {
  auto bad = [&] {
    return InvalidArgument("--metrics-address must be HOST:PORT or [IPV6]:PORT, not \"" + text.substr(0, 100) + "\"");
  };
  MetricsAddress out;
  std::string port;
  if (text.starts_with("[")) {
    size_t close = text.find("]:");
    if (close == std::string::npos) return bad();
    out.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return bad();
    out.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (out.host.empty() || port.empty()) return bad();
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (ec != std::errc() || end != port.data() + port.size() || out.port < 0 || out.port > 65535) return bad();
  return out;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsAddress& address, PageFn page) {
  std::unique_ptr<MetricsServer> self(new MetricsServer());
  self->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *self->server_;
  if (address.host.find(':') != std::string::npos) server.set_address_family(AF_INET6);
  // SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, which would
  // let a second plugin bind the same port and take half of the scrapes.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.Get("/metrics", [page = std::move(page)](const httplib::Request&, httplib::Response& res) {
    res.set_content(page(), "text/plain; version=0.0.4; charset=utf-8");
  });
  const std::string where = (address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host) +
                            ":" + std::to_string(address.port);
  if (address.port == 0) {
    self->port_ = server.bind_to_any_port(address.host);
    if (self->port_ <= 0) return Unavailable("metrics: cannot listen on " + where);
  } else {
    if (!server.bind_to_port(address.host, address.port)) {
      return Unavailable("metrics: cannot listen on " + where + " (in use, or not an address of this host)");
    }
    self->port_ = address.port;
  }
  self->thread_ = std::thread([&server] { server.listen_after_bind(); });
  // stop() only stops a server that runs: wait for it (the thread does nothing else first).
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return self;
}

MetricsServer::~MetricsServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ocifs
