// HttpClient: libcurl behind RAII — one CURLSH share (DNS cache, TLS
// sessions), a pool of easy handles (each keeps its own live connections),
// timeouts, and the retry policy. Never follows redirects by itself.
#pragma once

#include <cstdint>
#include <memory>
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
};

struct HttpClientOptions {
  std::shared_ptr<const TlsConfig> tls;  // null: verify with the system CAs only
  long connect_timeout_seconds = 10;
  long low_speed_timeout_seconds = 30;
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
  // on connection errors, 429 and 5xx as the policy allows, then returns the
  // last response. Every HTTP status is a response; transport failures are
  // errors: kUnavailable ("cannot resolve host h: ..", "<peer> h:p unreachable:
  // Connection refused", timeouts, TLS verification), kCorrupt (body too long).
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
  Attempt PerformOnce(const HttpRequest& request) const;

  HttpClientOptions options_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace ocifs
