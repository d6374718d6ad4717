// RegistryWriter: pushes to one repository of a registry (docker registry
// HTTP API v2, OCI distribution spec 1.1): blobs (monolithic upload, skipped
// when present), manifests, and the referrers fallback tag that a registry
// without the referrers API needs to list an artifact's subject.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "ocifs/status.h"
#include "registry/descriptor.h"
#include "registry/http_client.h"
#include "registry/image_resolver.h"
#include "registry/reference.h"
#include "registry/referrers.h"
#include "registry/registry_options.h"

namespace ocifs {

class RegistrySession;

// Plain value type: what PutManifest learnt.
struct PutManifestResult {
  std::string digest;  // "sha256:<hex>" of the body
  // The OCI-Subject response header: the registry processed the manifest's
  // `subject` (it has the referrers API). "" = absent: the caller keeps the
  // fallback tag (AddToFallbackTag).
  std::string oci_subject;
  bool subject_processed() const { return !oci_subject.empty(); }
};

// Counts of one writer's work (for the caller's summary).
struct PushCounts {
  uint64_t blobs_uploaded = 0;
  uint64_t blobs_present = 0;  // skipped: the registry had them (HEAD)
  uint64_t manifests_put = 0;
};

// Thread safety: safe for concurrent use. AddToFallbackTag calls are
// serialised within one writer; two processes updating one fallback tag at
// once may lose an entry (the spec leaves that race to clients; registries
// with the referrers API have none).
// Errors of every push operation: a 401 or 403 (or a token server refusing
// the push scope) is kUnauthenticated / kPermissionDenied naming the
// registry, the repository and the scope "repository:<repo>:pull,push";
// messages never contain credentials.
class RegistryWriter {
 public:
  // A session with push access (options.push is set here) to ref's
  // repository; its tag or digest is not used. Loads credentials and TLS
  // files; contacts nothing yet. kInvalidArgument for oci: references.
  [[nodiscard]] static Result<std::unique_ptr<RegistryWriter>> Open(const Reference& ref, RegistryOptions options);

  explicit RegistryWriter(std::shared_ptr<RegistrySession> session);
  ~RegistryWriter();
  RegistryWriter(const RegistryWriter&) = delete;
  RegistryWriter& operator=(const RegistryWriter&) = delete;

  // Proves push access now, before any work whose result would be pushed:
  // uploads the 2-byte blob "{}" (the OCI empty descriptor's, every
  // artifact's config), even when the registry has it. Fails as a push does
  // (see above) when the credentials may only pull.
  [[nodiscard]] Status CheckPushAccess();

  // Pushes `bytes` (in memory; small blobs: index files, configs) as a blob:
  // HEAD first and no upload when the registry has it, else POST an upload
  // and PUT the bytes in one request. Returns the descriptor (media_type,
  // sha256 digest, size). kCorrupt if the registry's Docker-Content-Digest
  // differs; kInvalidArgument for an empty media type or a 400 answer.
  [[nodiscard]] Result<Descriptor> PushBlob(std::string media_type, std::span<const uint8_t> bytes);

  // PUT /v2/<repo>/manifests/<tag_or_digest> with Content-Type `media_type`.
  // The body is at most 4 MiB; a digest reference must be the body's digest,
  // a tag must be a valid tag (kInvalidArgument otherwise). kCorrupt if the
  // registry's Docker-Content-Digest differs from the body's digest;
  // kInvalidArgument when the registry rejects the manifest (400, e.g. a blob
  // it references is missing), naming the registry's reason.
  [[nodiscard]] Result<PutManifestResult> PutManifest(const std::string& tag_or_digest, const std::string& media_type,
                                                      std::string_view body);

  // Adds `artifact_manifest` (an OCI image manifest descriptor with its
  // artifact_type, and annotations) to the index at the fallback tag of
  // `subject_digest`: GET it (404: a new index), drop an entry of the same
  // digest, keep the others, PUT it back as an OCI image index. Push the
  // artifact manifest first (docker-registry checks an index's entries).
  // kCorrupt if the tag holds something that is not a referrers index (it
  // is left as it is); kInvalidArgument for a bad digest or descriptor.
  [[nodiscard]] Status AddToFallbackTag(const std::string& subject_digest, const Descriptor& artifact_manifest);

  // As ListReferrers (referrers.h), through this writer's session.
  [[nodiscard]] Result<ReferrerList> ListReferrers(const std::string& subject_digest,
                                                   const std::string& artifact_type);
  // As RegistrySession::GetManifest: the manifest by tag or digest.
  [[nodiscard]] Result<FetchedManifest> GetManifest(const std::string& tag_or_digest);

  PushCounts counts() const;
  // "registry/repo" for messages.
  std::string Name() const;

 private:
  // Send() of a push operation: a refusal of the credentials becomes the
  // push refusal naming the scope.
  Result<HttpResponse> SendPush(HttpRequest req);
  // POST /v2/<repo>/blobs/uploads/, then PUT `bytes` (of digest d.digest) there.
  Status Upload(const Descriptor& d, std::span<const uint8_t> bytes);
  // A non-2xx answer to a push operation on `what` ("upload of blob sha256:..").
  Status PushError(const HttpResponse& resp, const std::string& what) const;
  // Checks a Docker-Content-Digest answer against `digest`.
  Status CheckContentDigest(const HttpResponse& resp, const std::string& digest, const std::string& what) const;

  std::shared_ptr<RegistrySession> session_;
  std::mutex fallback_mu_;  // serialises AddToFallbackTag's read-modify-write
  std::atomic<uint64_t> blobs_uploaded_{0}, blobs_present_{0}, manifests_put_{0};
};

}  // namespace ocifs
