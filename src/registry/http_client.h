// HttpClient: libcurl behind RAII — one CURLSH share (DNS cache, TLS
// sessions), a pool of easy handles (each keeps its own live connections),
// timeouts, and the retry policy. Never follows redirects by itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ocifs/status.h"
#include "registry/retry_policy.h"
#include "registry/tls_config.h"

namespace ocifs {

// Response headers of the final response; names lowercased.
struct HttpHeaders {
  std::vector<std::pair<std::string, std::string>> list;
  std::string Get(std::string_view name) const;  // first value, or ""
  std::vector<std::string> GetAll(std::string_view name) const;
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;
  std::string body;  // bounded by HttpRequest::max_body; empty when a sink took it
  std::string url;   // the URL requested (may hold signed query strings: never log)
};

// Receives the body of a 2xx response instead of HttpResponse::body. Begin()
// starts each attempt (so retries start over). Not called for other statuses.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual Status Begin(long status, const HttpHeaders& headers) = 0;
  // false: stop the transfer (enough, or too much, arrived).
  virtual bool Write(std::span<const uint8_t> piece) = 0;
  // After the transfer: OK if the sink has what it needs.
  virtual Status Finish() = 0;
};

struct HttpRequest {
  std::string method = "GET";             // GET, HEAD, POST, PUT
  std::string url;                        // absolute http(s) URL
  std::vector<std::string> headers;       // "Name: value"; may hold secrets: never logged
  std::string body;                       // sent with POST/PUT
  size_t max_body = 1 << 20;              // a longer buffered body is kCorrupt
  BodySink* sink = nullptr;               // takes 2xx bodies; not owned
  std::string peer = "host";              // for messages: "<peer> <host:port> unreachable: ..."
  // When the operation this request belongs to stops retrying; unset = now +
  // HttpClientOptions::total_timeout_seconds. Shared by the requests of one
  // operation (scheme probe, auth round, redirects).
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::optional<int> max_retries;         // overrides the policy's (0: one attempt, a probe)
};

struct HttpClientOptions {
  std::shared_ptr<const TlsConfig> tls;  // null: verify with the system CAs only
  long connect_timeout_seconds = 10;
  // An attempt that receives no byte for this long is abandoned (libcurl's
  // low-speed limit: under 1 byte/s for this many seconds); the retry goes
  // out on a fresh connection. Also caps the connect timeout.
  long stall_timeout_seconds = 10;
  // No retry starts after this long, and the last attempt's stall and connect
  // timeouts are cut to what is left: a request waits at most about this
  // long without progress. A transfer that keeps receiving is never cut.
  long total_timeout_seconds = 20;
  RetryPolicy retry;
};

// Thread safety: Perform is safe to call concurrently; each call borrows its
// own easy handle from the pool for its duration.
class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request; retries (jittered exponential backoff, Retry-After)
  // on connection errors, stalls, 429 and 5xx as the policy and the deadline
  // allow, then returns the last response. Every HTTP status is a response;
  // transport failures are errors: kUnavailable ("cannot resolve host h: ..",
  // "<peer> h:p unreachable: Connection refused", "<peer> h:p: GET URL got no
  // answer in 10 s", TLS verification), kCorrupt (body too long). A failure
  // after retries says how many attempts it made and for how long.
  [[nodiscard]] Result<HttpResponse> Perform(const HttpRequest& request) const;

  // "host:port" of a URL (the port only if written), for messages.
  static std::string HostPort(std::string_view url);
  // scheme://host/path without the query (safe to log).
  static std::string Redact(std::string_view url);
  // Percent-encodes all but unreserved characters.
  static std::string Escape(std::string_view s);

 private:
  struct Attempt;
  struct Pool;
  // One attempt; `fresh` opens a new connection, `stall_seconds` is its
  // stall (and connect) timeout.
  Attempt PerformOnce(const HttpRequest& request, bool fresh, long stall_seconds) const;

  HttpClientOptions options_;
  std::unique_ptr<Pool> pool_;
  // $HTTP_PROXY when $http_proxy is unset: libcurl reads only the lower-case
  // name for plain HTTP (a CGI precaution); Go's clients, and so Dragonfly's
  // instructions, use the upper-case one. HTTPS_PROXY, NO_PROXY: libcurl's own.
  std::string upper_http_proxy_;
};

}  // namespace ocifs
