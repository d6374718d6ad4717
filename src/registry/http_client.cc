#include "registry/http_client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

namespace ocifs {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

double Jitter() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Frees a header list on scope exit.
struct SlistGuard {
  curl_slist* list = nullptr;
  ~SlistGuard() { curl_slist_free_all(list); }
  void Append(const std::string& h) {
    curl_slist* n = curl_slist_append(list, h.c_str());
    if (n) list = n;
  }
};

}  // namespace

std::string HttpHeaders::Get(std::string_view name) const {
  for (const auto& [k, v] : list) {
    if (k == name) return v;
  }
  return "";
}

std::vector<std::string> HttpHeaders::GetAll(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : list) {
    if (k == name) out.push_back(v);
  }
  return out;
}

// The share and the idle easy handles. Lock order: a share lock is taken
// only inside libcurl; mu guards `idle` alone.
struct HttpClient::Pool {
  CURLSH* share = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_locks;
  std::mutex mu;
  std::vector<CURL*> idle;  // guarded by mu
  static constexpr size_t kMaxIdle = 16;

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
    static_cast<Pool*>(self)->share_locks[static_cast<size_t>(data)].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* self) {
    static_cast<Pool*>(self)->share_locks[static_cast<size_t>(data)].unlock();
  }

  Pool() {
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Pool::Lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Pool::Unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    // Not CURL_LOCK_DATA_CONNECT: libcurl does not support sharing one
    // connection cache between threads that transfer concurrently. Each pooled
    // easy handle keeps its connections alive between uses instead.
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  ~Pool() {
    for (CURL* c : idle) curl_easy_cleanup(c);
    curl_share_cleanup(share);
  }

  CURL* Borrow() {
    {
      std::lock_guard lock(mu);
      if (!idle.empty()) {
        CURL* c = idle.back();
        idle.pop_back();
        return c;
      }
    }
    return curl_easy_init();
  }
  void Return(CURL* c) {
    curl_easy_reset(c);  // keeps live connections, DNS and session caches
    std::lock_guard lock(mu);
    if (idle.size() < kMaxIdle) {
      idle.push_back(c);
      return;
    }
    curl_easy_cleanup(c);
  }
};

struct HttpClient::Attempt {
  CURLcode code = CURLE_OK;
  long os_errno = 0;
  std::string error;  // curl's error buffer
  HttpResponse response;
  Status failure;     // set when the attempt failed (transport or sink)
  AttemptFailure kind = AttemptFailure::kNone;
};

namespace {

struct Transfer {
  const HttpRequest* request = nullptr;
  CURL* curl = nullptr;
  HttpResponse* response = nullptr;
  bool began = false;
  bool to_sink = false;
  bool sink_stopped = false;
  bool overflow = false;
  size_t limit = 0;
  Status sink_status;
};

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    t->response->headers.list.clear();  // a new (interim or final) response
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos && t->response->headers.list.size() < 200) {
    t->response->headers.list.emplace_back(Lower(std::string(line.substr(0, colon))), Trim(line.substr(colon + 1)));
  }
  return size * n;
}

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (!t->began) {
    t->began = true;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    if (t->request->sink && status >= 200 && status < 300) {
      t->sink_status = t->request->sink->Begin(status, t->response->headers);
      if (!t->sink_status.ok()) return 0;
      t->to_sink = true;
    } else {
      t->limit = t->request->sink ? size_t{64} << 10 : t->request->max_body;
    }
  }
  if (t->to_sink) {
    if (!t->request->sink->Write({reinterpret_cast<const uint8_t*>(data), len})) {
      t->sink_stopped = true;
      return 0;
    }
    return len;
  }
  if (t->response->body.size() + len > t->limit) {
    if (t->request->sink) return len;  // an error body beside a sink: keep its start only
    t->overflow = true;
    return 0;
  }
  t->response->body.append(data, len);
  return len;
}

int SslCtxCallback(CURL*, void* ssl_ctx, void* user) {
  static_cast<const TlsConfig*>(user)->AddCasTo(ssl_ctx);
  return CURLE_OK;
}

}  // namespace

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  GlobalInit();
  pool_ = std::make_unique<Pool>();
  const char* lower = std::getenv("http_proxy");
  const char* upper = std::getenv("HTTP_PROXY");
  if ((lower == nullptr || *lower == '\0') && upper != nullptr) upper_http_proxy_ = upper;
}

HttpClient::~HttpClient() = default;

std::string HttpClient::HostPort(std::string_view url) {
  size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string_view hp = url.substr(start, end == std::string_view::npos ? end : end - start);
  if (size_t at = hp.rfind('@'); at != std::string_view::npos) hp.remove_prefix(at + 1);
  return std::string(hp);
}

std::string HttpClient::Redact(std::string_view url) {
  size_t q = url.find_first_of("?#");
  std::string s(url.substr(0, q));
  if (q != std::string_view::npos) s += "?...";
  return s;
}

std::string HttpClient::Escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

HttpClient::Attempt HttpClient::PerformOnce(const HttpRequest& req, bool fresh, long stall_seconds) const {
  Attempt a;
  a.response.url = req.url;
  // One easy handle borrowed for one scope.
  class EasyLease {
   public:
    explicit EasyLease(Pool* pool) : pool_(pool), curl_(pool->Borrow()) {}
    ~EasyLease() {
      if (curl_) pool_->Return(curl_);
    }
    EasyLease(const EasyLease&) = delete;
    EasyLease& operator=(const EasyLease&) = delete;
    CURL* get() const { return curl_; }

   private:
    Pool* pool_;
    CURL* curl_;
  };
  EasyLease lease(pool_.get());
  CURL* c = lease.get();
  if (!c) {
    a.failure = Internal("curl_easy_init failed");
    a.kind = AttemptFailure::kPermanent;
    return a;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  Transfer t;
  t.request = &req;
  t.curl = c;
  t.response = &a.response;
  SlistGuard headers;
  for (const auto& h : req.headers) headers.Append(h);
  headers.Append("Expect:");

  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SHARE, pool_->share);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  stall_seconds = std::max(1L, stall_seconds);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, std::min(options_.connect_timeout_seconds, stall_seconds));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_seconds);
  if (fresh) curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
  if (!upper_http_proxy_.empty() && req.url.starts_with("http://")) {
    curl_easy_setopt(c, CURLOPT_PROXY, upper_http_proxy_.c_str());  // NO_PROXY still applies
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  const TlsConfig* tls = options_.tls.get();
  bool verify = !tls || tls->verify();
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
  if (tls && tls->has_extra_cas()) {
    curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, &SslCtxCallback);
    curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, const_cast<TlsConfig*>(tls));
  }
  if (tls && !tls->client_cert().empty()) {
    curl_easy_setopt(c, CURLOPT_SSLCERT, tls->client_cert().c_str());
    curl_easy_setopt(c, CURLOPT_SSLKEY, tls->client_key().c_str());
  }
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "POST" || req.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    if (req.method == "PUT") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
  } else if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  a.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.response.status);
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &a.os_errno);
  a.error = errbuf[0] ? errbuf : curl_easy_strerror(a.code);
  if (a.error.size() > 300) a.error.resize(300);

  std::string host = HostPort(req.url);
  bool ok_status = a.response.status >= 200 && a.response.status < 300;
  if (req.sink && ok_status && a.code == CURLE_OK && !t.began) {
    t.sink_status = req.sink->Begin(a.response.status, a.response.headers);  // an empty body
    t.to_sink = t.sink_status.ok();
  }
  if (!t.sink_status.ok()) {
    a.failure = t.sink_status;
    a.kind = AttemptFailure::kPermanent;
    return a;
  }
  if (t.overflow) {
    a.failure = Corrupt(req.method + " " + Redact(req.url) + ": response body longer than " +
                        std::to_string(t.limit) + " bytes");
    a.kind = AttemptFailure::kPermanent;
    return a;
  }
  if (t.to_sink && (a.code == CURLE_OK || t.sink_stopped)) {
    Status fin = req.sink->Finish();
    if (fin.ok()) {
      a.code = CURLE_OK;
      return a;
    }
    a.failure = fin;
    a.kind = fin.code() == Code::kUnavailable ? AttemptFailure::kConnection : AttemptFailure::kPermanent;
    return a;
  }
  switch (a.code) {
    case CURLE_OK:
      a.kind = ClassifyStatus(a.response.status);
      return a;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      a.failure = Unavailable("cannot resolve host " + host + ": " + a.error);
      a.kind = AttemptFailure::kPermanent;
      return a;
    case CURLE_COULDNT_CONNECT:
      a.failure = Unavailable(req.peer + " " + host + " unreachable: " +
                              (a.os_errno ? std::string(std::strerror(static_cast<int>(a.os_errno))) : a.error));
      a.kind = AttemptFailure::kConnection;
      return a;
    case CURLE_OPERATION_TIMEDOUT: {
      curl_off_t connected = 0, tls_done = 0, received = 0;
      long header_bytes = 0;
      curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connected);
      curl_easy_getinfo(c, CURLINFO_APPCONNECT_TIME_T, &tls_done);
      curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &received);
      curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &header_bytes);
      std::string what = req.method + " " + Redact(req.url);
      std::string limit = std::to_string(stall_seconds) + " s";
      std::string detail;
      if (connected == 0) {
        detail = std::string(req.url.starts_with("https://") ? "connecting (TCP, then the TLS handshake)" : "connecting") +
                 " timed out after " + std::to_string(std::min(options_.connect_timeout_seconds, stall_seconds)) + " s";
      } else if (req.url.starts_with("https://") && tls_done == 0) {
        detail = "TLS handshake for " + what + " got no answer in " + limit;
      } else if (header_bytes == 0 && received == 0) {
        detail = what + " got no answer in " + limit;
      } else {
        detail = what + " stalled: no data for " + limit + " after " + std::to_string(received) + " bytes";
      }
      a.failure = Unavailable(req.peer + " " + host + ": " + detail);
      a.kind = AttemptFailure::kConnection;
      return a;
    }
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      a.failure = Unavailable(req.peer + " " + host + ": connection failed: " + a.error);
      a.kind = AttemptFailure::kConnection;
      return a;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CONNECT_ERROR:
      a.failure = Unavailable("TLS with " + req.peer + " " + host + " failed: " + a.error +
                              (a.code == CURLE_PEER_FAILED_VERIFICATION
                                   ? " (give its CA with --cert-dir, or --tls-verify=false)"
                                   : ""));
      a.kind = AttemptFailure::kPermanent;
      return a;
    default:
      a.failure = Unavailable(req.method + " " + Redact(req.url) + ": " + a.error);
      a.kind = AttemptFailure::kPermanent;
      return a;
  }
}

Result<HttpResponse> HttpClient::Perform(const HttpRequest& req) const {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = req.deadline.value_or(start + std::chrono::seconds(options_.total_timeout_seconds));
  RetryPolicy policy = options_.retry;
  if (req.max_retries) policy.max_retries = *req.max_retries;
  bool fresh = false;
  for (int retry = 0;; ++retry) {
    auto left = std::chrono::ceil<std::chrono::seconds>(deadline - Clock::now()).count();
    Attempt a = PerformOnce(req, fresh, std::min<long>(options_.stall_timeout_seconds, std::max<long>(1, left)));
    spdlog::debug("http: {} {} -> {} {}", req.method, Redact(req.url), a.response.status,
                  a.failure.ok() ? "" : a.failure.message());
    bool again = policy.ShouldRetry(a.kind, retry);
    std::chrono::milliseconds delay{0};
    if (again) {
      std::optional<std::chrono::seconds> retry_after;
      if (a.kind == AttemptFailure::kStatus) retry_after = ParseRetryAfter(a.response.headers.Get("retry-after"));
      delay = policy.Delay(retry, Jitter(), retry_after);
      again = Clock::now() + delay < deadline;  // no attempt starts past the deadline
    }
    if (!again) {
      if (!a.failure.ok()) {
        if (retry > 0 && a.kind == AttemptFailure::kConnection) {
          auto took = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
          return Status(a.failure.code(), a.failure.message() + " (" + std::to_string(retry + 1) + " attempts in " +
                                              std::to_string(took) + " s)");
        }
        return a.failure;
      }
      return std::move(a.response);
    }
    fresh = a.kind == AttemptFailure::kConnection;  // a stalled or broken connection is not reused
    spdlog::debug("http: retrying {} {} in {} ms", req.method, Redact(req.url), delay.count());
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace ocifs
