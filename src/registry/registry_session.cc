#include "registry/registry_session.h"

#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "registry/digest.h"
#include "registry/fetch_stats.h"
#include "registry/http_range.h"
#include "registry/manifest.h"
#include "registry/multi_range_sink.h"
#include "registry/tls_config.h"

namespace ocifs {
namespace {

constexpr int kMaxRedirects = 5;
constexpr auto kLocationMaxAge = std::chrono::minutes(10);

// Counts blob body bytes, then hands them to a RangeSink.
class CountingRangeSink final : public BodySink {
 public:
  explicit CountingRangeSink(RangeSink* inner) : inner_(inner) {}
  Status Begin(long status, const HttpHeaders& headers) override {
    return inner_->Begin(status, headers.Get("content-range"));
  }
  bool Write(std::span<const uint8_t> piece) override {
    GlobalFetchStats().blob_bytes.fetch_add(piece.size(), std::memory_order_relaxed);
    return inner_->Write(piece);
  }
  Status Finish() override { return inner_->Finish(); }

 private:
  RangeSink* inner_;
};

// Counts blob body bytes, then hands them to another sink.
class CountingSink final : public BodySink {
 public:
  explicit CountingSink(BodySink* inner) : inner_(inner) {}
  Status Begin(long status, const HttpHeaders& headers) override { return inner_->Begin(status, headers); }
  bool Write(std::span<const uint8_t> piece) override {
    GlobalFetchStats().blob_bytes.fetch_add(piece.size(), std::memory_order_relaxed);
    return inner_->Write(piece);
  }
  Status Finish() override { return inner_->Finish(); }

 private:
  BodySink* inner_;
};

std::string Origin(std::string_view url) {
  size_t start = url.find("://");
  if (start == std::string_view::npos) return "";
  size_t end = url.find_first_of("/?#", start + 3);
  return std::string(url.substr(0, end));
}

// Resolves a Location header against the URL it came from.
std::string ResolveLocation(const std::string& base, const std::string& location) {
  if (location.starts_with("https://") || location.starts_with("http://")) return location;
  if (location.starts_with("//")) return base.substr(0, base.find("://") + 1) + location;
  if (location.starts_with("/")) return Origin(base) + location;
  size_t q = base.find_first_of("?#");
  std::string dir = base.substr(0, q);
  return dir.substr(0, dir.rfind('/') + 1) + location;
}

// The registry's own error text: {"errors":[{"code":"..","message":".."}]}.
std::string RegistryErrorText(const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("errors") || !j["errors"].is_array()) return "";
  std::string out;
  for (const auto& e : j["errors"]) {
    if (!e.is_object()) continue;
    std::string code = e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
    std::string msg = e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
    if (!out.empty()) out += "; ";
    out += code.empty() ? msg : code + ": " + msg;
  }
  if (out.size() > 300) out.resize(300);
  return out;
}

}  // namespace

Result<std::shared_ptr<RegistrySession>> RegistrySession::Create(const Reference& ref, const RegistryOptions& options) {
  OCIFS_ASSIGN_OR_RETURN(auto creds, FindCredentials(options, ref.registry, ref.repository));
  OCIFS_ASSIGN_OR_RETURN(auto tls, TlsConfig::Load(options.cert_dir, ref.ApiHost(), options.tls_verify));
  HttpClientOptions http;
  http.tls = std::move(tls);
  http.connect_timeout_seconds = options.connect_timeout_seconds;
  http.stall_timeout_seconds = options.stall_timeout_seconds;
  http.total_timeout_seconds = options.registry_timeout_seconds;
  http.retry.max_retries = std::max(0, options.max_retries);
  return std::make_shared<RegistrySession>(ref, options, std::make_unique<HttpClient>(std::move(http)),
                                           std::move(creds));
}

RegistrySession::RegistrySession(Reference ref, const RegistryOptions& options, std::unique_ptr<HttpClient> http,
                                 std::optional<Credentials> creds)
    : ref_(std::move(ref)),
      scope_(options.push ? PushScope(ref_.repository) : PullScope(ref_.repository)),
      tls_verify_(options.tls_verify),
      timeout_seconds_(options.registry_timeout_seconds),
      http_(std::move(http)),
      // On a refusal the credentials are looked up again as at the start: a
      // rewritten auth file (a CSI volume's rotated secret) or a helper's new
      // answer is used from then on. --creds never changes.
      auth_(ref_.registry, std::move(creds), http_.get(),
            [options, registry = ref_.registry, repository = ref_.repository] {
              return FindCredentials(options, registry, repository);
            }) {}

Result<HttpResponse> RegistrySession::SendWithScheme(HttpRequest req, const std::string& path) {
  int scheme = scheme_.load();
  if (tls_verify_ || scheme == kHttps) {
    req.url = "https://" + ref_.ApiHost() + path;
    return http_->Perform(req);
  }
  if (scheme == kHttp) {
    req.url = "http://" + ref_.ApiHost() + path;
    return http_->Perform(req);
  }
  // The probe: one https attempt and plain HTTP with the retries. https wins
  // when it answers. A request that carries no credentials and changes
  // nothing (GET, HEAD) goes both ways at once, so a plain registry costs no
  // failed TLS round trips before its first answer; any other goes over plain
  // HTTP only after https failed, so credentials never cross plain HTTP to a
  // registry that speaks TLS.
  HttpRequest probe = req;
  probe.url = "https://" + ref_.ApiHost() + path;
  probe.max_retries = 0;
  req.url = "http://" + ref_.ApiHost() + path;
  const bool carries_credentials = std::ranges::any_of(
      req.headers, [](const std::string& h) { return h.size() >= 14 && strncasecmp(h.c_str(), "authorization:", 14) == 0; });
  const bool race = !carries_credentials && (req.method == "GET" || req.method == "HEAD") && !req.sink;
  std::optional<Result<HttpResponse>> raced;
  Result<HttpResponse> https = [&] {
    // The plain request's thread lives for this one request and is joined
    // when this lambda returns; each request borrows its own handle
    // (HttpClient::Perform is safe for concurrent use).
    std::jthread plain_thread;
    if (race) plain_thread = std::jthread([&] { raced = http_->Perform(req); });
    return http_->Perform(probe);
  }();
  if (https.ok()) {
    scheme_.store(kHttps);
    return https;
  }
  auto plain = raced ? std::move(*raced) : http_->Perform(req);
  if (!plain.ok()) {
    // Both failed: say what each did, plain HTTP's first (a plain server's
    // answer to TLS is "wrong version number", which hides why HTTP failed).
    return Status(plain.status().code(), plain.status().message() + "; over https: " + https.status().message());
  }
  spdlog::info("registry {}: using plain HTTP (https failed and --tls-verify=false)", ref_.registry);
  scheme_.store(kHttp);
  return plain;
}

Result<HttpResponse> RegistrySession::SendToRegistry(HttpRequest req) {
  const std::string path = req.url;
  const size_t base_headers = req.headers.size();
  req.peer = "registry";
  if (!req.deadline) req.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds_);
  // Round 0 sends what is known; a 401 teaches the challenge (or drops a
  // token the registry no longer takes) for round 1. A refusal after that, by
  // the registry or its token server, reads the credentials again once: when
  // they changed (a rotated secret) there is one more round with them.
  bool reloaded = false;
  for (int round = 0;; ++round) {
    auto authorization = auth_.Authorization(scope_, req.deadline);
    if (!authorization.ok()) {
      if (authorization.status().code() == Code::kUnauthenticated && !reloaded) {
        reloaded = true;
        if (auth_.ReloadCredentials()) continue;
      }
      return authorization.status();
    }
    req.headers.resize(base_headers);
    if (!authorization->empty()) req.headers.push_back("Authorization: " + *authorization);
    OCIFS_ASSIGN_OR_RETURN(HttpResponse resp, SendWithScheme(req, path));
    if (resp.status != 401) return resp;
    if (round >= 1) {
      if (reloaded) return resp;  // refused again: StatusError says so
      reloaded = true;
      if (!auth_.ReloadCredentials()) return resp;
    }
    OCIFS_RETURN_IF_ERROR(auth_.OnUnauthorized(resp.headers, scope_));
  }
}

Result<HttpResponse> RegistrySession::Send(HttpRequest req) {
  if (req.url.starts_with("/")) return SendToRegistry(std::move(req));
  size_t scheme_end = req.url.find("://");
  if (!req.url.starts_with("https://") && !req.url.starts_with("http://")) {
    return Unavailable("registry " + ref_.registry + " named a URL that is not http(s): " +
                       HttpClient::Redact(req.url).substr(0, 200));
  }
  if (HttpClient::HostPort(req.url) == ref_.ApiHost()) {
    size_t path = req.url.find('/', scheme_end + 3);
    req.url = path == std::string::npos ? "/" : req.url.substr(path);
    return SendToRegistry(std::move(req));
  }
  req.peer = "registry upload location";  // another host: never the registry's Authorization
  return http_->Perform(req);
}

std::string RegistrySession::DescribeResponse(const HttpResponse& resp) {
  std::string detail = RegistryErrorText(resp.body);
  return "HTTP " + std::to_string(resp.status) + (detail.empty() ? "" : ": " + detail);
}

Status RegistrySession::PushRefused(long http_status, std::string_view detail) const {
  return auth_.PushRefusedError(ref_.repository, scope_, http_status, detail);
}

Status RegistrySession::StatusError(const HttpResponse& resp, const std::string& what) const {
  std::string suffix = " (" + DescribeResponse(resp) + ")";
  switch (resp.status) {
    case 401: return auth_.RefusedError(scope_);
    case 403: return PermissionDenied("registry " + ref_.registry + " denied access to " + what + suffix);
    case 404: return NotFound(what + " unknown in " + Name() + suffix);
    default:
      if (resp.status >= 500 || resp.status == 429) {
        return Unavailable("registry " + ref_.registry + " failed to serve " + what + suffix);
      }
      return Unavailable("registry " + ref_.registry + " answered " + what + " unexpectedly" + suffix);
  }
}

Result<FetchedManifest> RegistrySession::GetManifest(const std::string& tag_or_digest,
                                                     std::optional<std::chrono::steady_clock::time_point> deadline) {
  bool by_digest = tag_or_digest.starts_with("sha256:");
  HttpRequest req;
  req.url = "/v2/" + ref_.repository + "/manifests/" + tag_or_digest;
  req.headers.push_back("Accept: " + ManifestAcceptHeader());
  req.max_body = kMaxManifestBytes;
  req.deadline = deadline;
  GlobalFetchStats().manifest_requests.fetch_add(1, std::memory_order_relaxed);
  std::string what = "manifest " + tag_or_digest;
  auto sent = SendToRegistry(std::move(req));
  if (!sent.ok()) {
    if (sent.status().code() == Code::kCorrupt) return Corrupt(what + " of " + Name() + " is larger than 4 MiB");
    return sent.status();
  }
  HttpResponse resp = std::move(sent).value();
  if (resp.status == 404) {
    std::string image = Name() + (by_digest ? "@" : ":") + tag_or_digest;
    return NotFound("image " + image + " not found: manifest unknown (HTTP 404)");
  }
  if (resp.status != 200) return StatusError(resp, what);
  FetchedManifest m;
  m.media_type = resp.headers.Get("content-type");
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(resp.body.data()), resp.body.size());
  if (by_digest) {
    OCIFS_RETURN_IF_ERROR(VerifyDigest(bytes, tag_or_digest, what + " of " + Name()));
    m.digest = tag_or_digest;
  } else {
    m.digest = Sha256Digest(bytes);
    std::string header = resp.headers.Get("docker-content-digest");
    if (header.starts_with("sha256:") && header != m.digest) {
      return Corrupt(what + " of " + Name() + ": digest mismatch: Docker-Content-Digest says " + header.substr(0, 80) +
                     ", content is " + m.digest);
    }
  }
  m.bytes = std::move(resp.body);
  return m;
}

Status RegistrySession::ReadBlobRange(const Descriptor& blob, uint64_t offset, std::span<uint8_t> buf,
                                      std::optional<std::chrono::steady_clock::time_point> deadline) {
  RangeSink range(buf, offset, blob.size, "blob " + blob.digest + " of " + Name());
  CountingRangeSink sink(&range);
  return FetchBlob(blob, RangeHeaderValue(offset, buf.size()), sink, deadline, std::nullopt);
}

Status RegistrySession::StreamBlobRange(const Descriptor& blob, uint64_t offset, uint64_t length,
                                        const RangeSink::Consumer& consumer,
                                        std::optional<std::chrono::steady_clock::time_point> deadline) {
  RangeSink range(length, consumer, offset, blob.size, "blob " + blob.digest + " of " + Name());
  CountingRangeSink sink(&range);
  return FetchBlob(blob, RangeHeaderValue(offset, length), sink, deadline, 0);
}

Status RegistrySession::StreamBlobRanges(const Descriptor& blob, std::vector<ByteRange> ranges,
                                         const MultiRangeSink::Consumer& consumer,
                                         std::optional<std::chrono::steady_clock::time_point> deadline) {
  if (multi_range_refused_.load(std::memory_order_relaxed)) {
    return Unsupported("registry " + ref_.registry + " answers one range per request");
  }
  MultiRangeSink ranges_sink(std::move(ranges), blob.size, consumer, "blob " + blob.digest + " of " + Name());
  CountingSink sink(&ranges_sink);
  Status st = FetchBlob(blob, ranges_sink.RangeHeaderValue(), sink, deadline, std::nullopt);
  if (st.code() == Code::kUnsupported && !multi_range_refused_.exchange(true)) {
    spdlog::info("registry {}: no multi-range requests ({}); asking one range per request", ref_.registry,
                 st.message());
  }
  return st;
}

Status RegistrySession::FetchBlob(const Descriptor& blob, const std::string& range, BodySink& sink,
                                  std::optional<std::chrono::steady_clock::time_point> deadline,
                                  std::optional<int> max_retries) {
  const std::string what = "blob " + blob.digest;
  HttpRequest req;
  req.headers.push_back("Range: " + range);
  req.sink = &sink;
  req.max_retries = max_retries;
  req.deadline = deadline.value_or(std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds_));
  auto& stats = GlobalFetchStats();
  // Counts the range read and its latency on every way out; `fetched` is set where it succeeds.
  bool fetched = false;
  struct FetchTimer {
    FetchStats& stats;
    const bool& fetched;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    ~FetchTimer() {
      stats.fetch_latency.Observe(std::chrono::steady_clock::now() - start);
      stats.blob_fetches.fetch_add(1, std::memory_order_relaxed);
      if (!fetched) stats.blob_fetch_errors.fetch_add(1, std::memory_order_relaxed);
    }
  } timer{stats, fetched};

  // A storage URL the registry redirected to earlier, until it fails.
  std::optional<std::string> cached;
  {
    std::lock_guard lock(locations_mu_);
    auto it = locations_.find(blob.digest);
    if (it != locations_.end()) {
      if (std::chrono::steady_clock::now() - it->second.since < kLocationMaxAge) {
        cached = it->second.url;
      } else {
        locations_.erase(it);
      }
    }
  }
  if (cached) {
    req.url = *cached;
    req.peer = "blob storage";
    stats.blob_requests.fetch_add(1, std::memory_order_relaxed);
    auto resp = http_->Perform(req);
    if (resp.ok() && resp->status / 100 == 2) {
      fetched = true;
      return Status::Ok();
    }
    // The storage answered, not as the sink wants it (a multi-range request it does not do).
    if (!resp.ok() && resp.status().code() == Code::kUnsupported) return resp.status();
    spdlog::debug("registry {}: stored location of {} failed ({}); asking the registry again", ref_.registry,
                  blob.digest, resp.ok() ? "HTTP " + std::to_string(resp->status) : resp.status().message());
    std::lock_guard lock(locations_mu_);
    locations_.erase(blob.digest);
  }

  req.url = "/v2/" + ref_.repository + "/blobs/" + blob.digest;
  stats.blob_requests.fetch_add(1, std::memory_order_relaxed);
  OCIFS_ASSIGN_OR_RETURN(HttpResponse resp, SendToRegistry(req));
  std::string from = resp.url;
  for (int hop = 0; resp.status >= 300 && resp.status < 400; ++hop) {
    std::string location = resp.headers.Get("location");
    if (location.empty()) return Unavailable("registry " + ref_.registry + " redirected " + what + " without a Location");
    if (hop == kMaxRedirects) return Unavailable("registry " + ref_.registry + ": too many redirects for " + what);
    HttpRequest next = req;
    next.url = ResolveLocation(from, location);
    if (!next.url.starts_with("https://") && !next.url.starts_with("http://")) {
      return Unavailable("registry " + ref_.registry + " redirected " + what + " to a non-http URL");
    }
    // The registry's Authorization is never sent to another host.
    next.peer = Origin(next.url) == Origin(from) ? "registry" : "blob storage";
    if (next.peer == "registry") {
      OCIFS_ASSIGN_OR_RETURN(std::string authorization, auth_.Authorization(scope_, req.deadline));
      if (!authorization.empty()) next.headers.push_back("Authorization: " + authorization);
    }
    stats.blob_requests.fetch_add(1, std::memory_order_relaxed);
    OCIFS_ASSIGN_OR_RETURN(resp, http_->Perform(next));
    from = next.url;
    if (resp.status / 100 == 2) {
      std::lock_guard lock(locations_mu_);
      locations_[blob.digest] = Location{from, std::chrono::steady_clock::now()};
    }
  }
  if (resp.status / 100 == 2) {
    fetched = true;
    return Status::Ok();
  }
  if (resp.status == 416) {
    return Corrupt(what + " of " + Name() + " is shorter than its descriptor says (" + std::to_string(blob.size) +
                   " bytes): range " + range.substr(0, 100) + " not satisfiable");
  }
  return StatusError(resp, what);
}

}  // namespace ocifs
