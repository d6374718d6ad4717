// RegistrySession: the HTTP conversation with one repository of one registry
// (docker registry HTTP API v2): scheme choice, auth, manifests by tag or
// digest, and blob range reads with redirects to object storage.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"
#include "registry/descriptor.h"
#include "registry/http_client.h"
#include "registry/http_range.h"
#include "registry/image_resolver.h"
#include "registry/multi_range_sink.h"
#include "registry/reference.h"
#include "registry/registry_auth.h"
#include "registry/registry_options.h"

namespace ocifs {

// Thread safety: safe for concurrent use. Shared (shared_ptr) by the
// RegistryClient and every BlobSource opened from it.
// Lock order: locations_mu_ is a leaf lock.
class RegistrySession {
 public:
  // Loads credentials and TLS files; contacts nothing yet.
  [[nodiscard]] static Result<std::shared_ptr<RegistrySession>> Create(const Reference& ref,
                                                                       const RegistryOptions& options);

  // GET /v2/<repo>/manifests/<tag or digest>, at most 4 MiB. A digest is
  // verified; for a tag the digest is computed (and checked against
  // Docker-Content-Digest). 404 is kNotFound naming the image.
  // `deadline`, for this and ReadBlobRange: the operation's, shared with
  // other endpoints asked before (PullEndpoints); default now +
  // --registry-timeout. No attempt (token requests included) starts after it.
  [[nodiscard]] Result<FetchedManifest> GetManifest(
      const std::string& tag_or_digest, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

  // Reads exactly [offset, offset + buf.size()) of the blob (buf non-empty,
  // inside blob.size) into buf; never writes past buf. 404 is kNotFound
  // "blob sha256:.. unknown in <registry>/<repo>".
  [[nodiscard]] Status ReadBlobRange(const Descriptor& blob, uint64_t offset, std::span<uint8_t> buf,
                                     std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // Streams [offset, offset + length) of the blob to `consumer` as it
  // arrives (a first pass's whole-layer read: one request, not one per
  // piece). One attempt, no retry: bytes already handed over would come
  // again; the caller resumes with a new range. The consumer returning
  // false ends the transfer (then kUnavailable, the bytes taken named).
  [[nodiscard]] Status StreamBlobRange(const Descriptor& blob, uint64_t offset, uint64_t length,
                                       const RangeSink::Consumer& consumer,
                                       std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // Streams several ranges of the blob in one multi-range request
  // (MultiRangeSink: `ranges` sorted, disjoint, inside the blob; at least
  // two). kUnsupported when the registry (or the storage it redirects to)
  // does not do them: then, and for the session's life, no request is sent
  // (it answered with the whole blob or one range once). Retried as a range
  // read is (the consumer sees bytes again).
  [[nodiscard]] Status StreamBlobRanges(const Descriptor& blob, std::vector<ByteRange> ranges,
                                        const MultiRangeSink::Consumer& consumer,
                                        std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // --registry-timeout, in seconds.
  long timeout_seconds() const { return timeout_seconds_; }

  // Sends `req` to the registry with auth (retrying once after a 401
  // challenge) and returns its response, whatever its status (a 401 that
  // persists is a response too). req.url is a path ("/v2/..", maybe with a
  // query), or an absolute URL a registry answer named (an upload Location):
  // on the registry's host:port it is sent as its path, with auth; on any
  // other host without the registry's Authorization. Errors: the transport's
  // (HttpClient::Perform), kUnauthenticated when no usable challenge or token.
  [[nodiscard]] Result<HttpResponse> Send(HttpRequest req);

  // A non-2xx response as a Status; `what` names the object ("blob sha256:..").
  // 401 kUnauthenticated, 403 kPermissionDenied, 404 kNotFound, else kUnavailable.
  [[nodiscard]] Status StatusError(const HttpResponse& resp, const std::string& what) const;
  // The refusal of a push operation (RegistryAuth::PushRefusedError) for this
  // repository and scope; `detail` holds no secret.
  [[nodiscard]] Status PushRefused(long http_status, std::string_view detail) const;
  // "HTTP 404" plus the registry's own error text ("HTTP 404: MANIFEST_UNKNOWN: ..").
  static std::string DescribeResponse(const HttpResponse& resp);

  // "registry/repo" for messages.
  std::string Name() const { return ref_.registry + "/" + ref_.repository; }
  const Reference& reference() const { return ref_; }
  // The scope asked for: "repository:<repo>:pull", or ":pull,push" for a
  // session opened with RegistryOptions::push.
  const std::string& scope() const { return scope_; }

  RegistrySession(Reference ref, const RegistryOptions& options, std::unique_ptr<HttpClient> http,
                  std::optional<Credentials> creds);

 private:
  enum Scheme { kUnknown = 0, kHttps = 1, kHttp = 2 };
  // Sends `req` whose url is a path ("/v2/..") to the registry, with auth
  // (retrying once after a 401 challenge; a second 401 is the response).
  // Chooses https, or http when tls_verify is off and https fails.
  Result<HttpResponse> SendToRegistry(HttpRequest req);
  Result<HttpResponse> SendWithScheme(HttpRequest req, const std::string& path);
  // The range reads: GET the blob with "Range: <range>" (the header's
  // value), its 2xx body into `sink`, following redirects to storage.
  Status FetchBlob(const Descriptor& blob, const std::string& range, BodySink& sink,
                   std::optional<std::chrono::steady_clock::time_point> deadline, std::optional<int> max_retries);

  const Reference ref_;
  const std::string scope_;
  const bool tls_verify_;
  const long timeout_seconds_;  // RegistryOptions::registry_timeout_seconds
  std::unique_ptr<HttpClient> http_;
  RegistryAuth auth_;
  std::atomic<int> scheme_{kUnknown};
  std::atomic<bool> multi_range_refused_{false};  // StreamBlobRanges got kUnsupported once

  struct Location {
    std::string url;  // signed URL: never logged unredacted
    std::chrono::steady_clock::time_point since;
  };
  std::mutex locations_mu_;
  std::map<std::string, Location> locations_;  // digest -> redirect target; guarded by locations_mu_
};

}  // namespace ocifs
