#include "registry/registry_writer.h"

#include <spdlog/spdlog.h>

#include "registry/digest.h"
#include "registry/http_client.h"
#include "registry/manifest.h"
#include "registry/registry_session.h"

namespace ocifs {
namespace {

bool Refusal(long status) { return status == 401 || status == 403; }

}  // namespace

Result<std::unique_ptr<RegistryWriter>> RegistryWriter::Open(const Reference& ref, RegistryOptions options) {
  if (ref.transport != Reference::Transport::kDocker) {
    return InvalidArgument("cannot push to " + ref.ToString() + ": not a registry reference");
  }
  options.push = true;
  OCIFS_ASSIGN_OR_RETURN(auto session, RegistrySession::Create(ref, options));
  return std::make_unique<RegistryWriter>(std::move(session));
}

RegistryWriter::RegistryWriter(std::shared_ptr<RegistrySession> session) : session_(std::move(session)) {}

RegistryWriter::~RegistryWriter() = default;

std::string RegistryWriter::Name() const { return session_->Name(); }

PushCounts RegistryWriter::counts() const {
  return PushCounts{blobs_uploaded_.load(), blobs_present_.load(), manifests_put_.load()};
}

Result<HttpResponse> RegistryWriter::SendPush(HttpRequest req) {
  auto sent = session_->Send(std::move(req));
  if (sent.ok()) return sent;
  Code code = sent.status().code();
  if (code == Code::kUnauthenticated) return session_->PushRefused(401, sent.status().message());
  if (code == Code::kPermissionDenied) return session_->PushRefused(403, sent.status().message());
  return sent.status();
}

Status RegistryWriter::PushError(const HttpResponse& resp, const std::string& what) const {
  std::string detail = RegistrySession::DescribeResponse(resp);
  if (Refusal(resp.status)) return session_->PushRefused(resp.status, what + ": " + detail);
  if (resp.status == 400 || resp.status == 413 || resp.status == 415) {
    return InvalidArgument("registry " + session_->reference().registry + " rejected the " + what + " for " +
                           session_->reference().repository + " (" + detail + ")");
  }
  return session_->StatusError(resp, what);
}

Status RegistryWriter::CheckContentDigest(const HttpResponse& resp, const std::string& digest,
                                          const std::string& what) const {
  std::string header = resp.headers.Get("docker-content-digest");
  if (header.starts_with("sha256:") && header != digest) {
    return Corrupt("registry " + session_->reference().registry + " stored the " + what + " of " + Name() +
                   " as " + header.substr(0, 80) + ", but its content is " + digest);
  }
  return Status::Ok();
}

Result<Descriptor> RegistryWriter::PushBlob(std::string media_type, std::span<const uint8_t> bytes) {
  if (media_type.empty()) return InvalidArgument("PushBlob: a blob needs a media type");
  Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = Sha256Digest(bytes);
  d.size = bytes.size();
  const std::string repo_path = "/v2/" + session_->reference().repository;

  HttpRequest head;
  head.method = "HEAD";
  head.url = repo_path + "/blobs/" + d.digest;
  OCIFS_ASSIGN_OR_RETURN(HttpResponse present, SendPush(std::move(head)));
  // 200, or a redirect to the storage that holds it.
  if (present.status == 200 || (present.status >= 300 && present.status < 400)) {
    blobs_present_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("registry {}: blob {} already present", Name(), d.digest);
    return d;
  }
  if (present.status != 404) return PushError(present, "check of blob " + d.digest);

  OCIFS_RETURN_IF_ERROR(Upload(d, bytes));
  return d;
}

Status RegistryWriter::Upload(const Descriptor& d, std::span<const uint8_t> bytes) {
  const std::string uploads = "/v2/" + session_->reference().repository + "/blobs/uploads/";
  HttpRequest post;
  post.method = "POST";
  post.url = uploads;
  OCIFS_ASSIGN_OR_RETURN(HttpResponse started, SendPush(std::move(post)));
  if (started.status != 202) return PushError(started, "upload of blob " + d.digest);
  std::string location = started.headers.Get("location");
  if (location.empty()) {
    return Unavailable("registry " + session_->reference().registry + " started the upload of blob " + d.digest +
                       " without a Location");
  }
  if (!location.starts_with("/") && !location.starts_with("https://") && !location.starts_with("http://")) {
    location = uploads + location;  // relative to the POST's URL
  }
  HttpRequest put;
  put.method = "PUT";
  put.url = location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" +
            HttpClient::Escape(d.digest);
  put.headers.push_back("Content-Type: application/octet-stream");
  put.body.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  OCIFS_ASSIGN_OR_RETURN(HttpResponse done, SendPush(std::move(put)));
  if (done.status != 201 && done.status != 204) return PushError(done, "upload of blob " + d.digest);
  OCIFS_RETURN_IF_ERROR(CheckContentDigest(done, d.digest, "blob"));
  blobs_uploaded_.fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("registry {}: pushed blob {} ({} bytes)", Name(), d.digest, d.size);
  return Status::Ok();
}

Status RegistryWriter::CheckPushAccess() {
  // A whole upload, even when the registry has the blob: a HEAD needs only
  // pull, and cancelling an upload (DELETE) needs the delete action.
  static constexpr std::string_view kEmptyJson = "{}";
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(kEmptyJson.data()), kEmptyJson.size());
  Descriptor d;
  d.digest = Sha256Digest(bytes);
  d.size = bytes.size();
  return Upload(d, bytes);
}

Result<PutManifestResult> RegistryWriter::PutManifest(const std::string& tag_or_digest, const std::string& media_type,
                                                      std::string_view body) {
  if (media_type.empty()) return InvalidArgument("PutManifest: a manifest needs a media type");
  if (body.size() > kMaxManifestBytes) {
    return InvalidArgument("manifest for " + Name() + " is larger than 4 MiB (" + std::to_string(body.size()) +
                           " bytes)");
  }
  PutManifestResult out;
  out.digest = Sha256Digest({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
  if (tag_or_digest.find(':') != std::string::npos) {
    OCIFS_RETURN_IF_ERROR(ValidateDigest(tag_or_digest));
    if (tag_or_digest != out.digest) {
      return InvalidArgument("manifest pushed as " + tag_or_digest + " has digest " + out.digest);
    }
  } else if (!IsValidTag(tag_or_digest)) {
    return InvalidArgument("invalid tag \"" + tag_or_digest.substr(0, 140) +
                           "\": expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}");
  }
  HttpRequest put;
  put.method = "PUT";
  put.url = "/v2/" + session_->reference().repository + "/manifests/" + tag_or_digest;
  put.headers.push_back("Content-Type: " + media_type);
  put.body = std::string(body);
  OCIFS_ASSIGN_OR_RETURN(HttpResponse resp, SendPush(std::move(put)));
  const std::string what = "manifest " + tag_or_digest;
  if (resp.status / 100 != 2) return PushError(resp, what);
  OCIFS_RETURN_IF_ERROR(CheckContentDigest(resp, out.digest, what));
  out.oci_subject = resp.headers.Get("oci-subject");
  manifests_put_.fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("registry {}: put manifest {} ({}){}", Name(), tag_or_digest, out.digest,
                out.subject_processed() ? ", subject " + out.oci_subject : std::string());
  return out;
}

Status RegistryWriter::AddToFallbackTag(const std::string& subject_digest, const Descriptor& artifact) {
  OCIFS_ASSIGN_OR_RETURN(std::string tag, ReferrersTag(subject_digest));
  std::string what = "artifact " + artifact.digest;
  Status digest_ok = ValidateDigest(artifact.digest);
  if (!digest_ok.ok()) return InvalidArgument(what + ": " + digest_ok.message());
  if (artifact.media_type != media_type::kOciManifest) {
    return InvalidArgument(what + ": a referrer must be an OCI image manifest, not \"" +
                           artifact.media_type.substr(0, 100) + "\"");
  }
  if (artifact.artifact_type.empty()) return InvalidArgument(what + ": no artifactType");
  if (artifact.size == 0 || artifact.size > kMaxManifestBytes) {
    return InvalidArgument(what + ": implausible manifest size " + std::to_string(artifact.size));
  }
  const std::string index_what = "referrers fallback tag " + tag + " of " + Name();
  std::lock_guard lock(fallback_mu_);
  std::string current;
  auto got = session_->GetManifest(tag);
  if (got.ok()) {
    current = std::move(got->bytes);
  } else if (got.status().code() != Code::kNotFound) {
    return got.status();
  }
  OCIFS_ASSIGN_OR_RETURN(std::string merged, MergeIntoReferrersIndex(current, artifact, index_what));
  auto put = PutManifest(tag, std::string(media_type::kOciIndex), merged);
  if (!put.ok()) return put.status().WithContext("updating the " + index_what);
  spdlog::debug("registry {}: {} lists {}", Name(), index_what, artifact.digest);
  return Status::Ok();
}

Result<ReferrerList> RegistryWriter::ListReferrers(const std::string& subject_digest,
                                                   const std::string& artifact_type) {
  return ocifs::ListReferrers(*session_, subject_digest, artifact_type);
}

Result<FetchedManifest> RegistryWriter::GetManifest(const std::string& tag_or_digest) {
  return session_->GetManifest(tag_or_digest);
}

}  // namespace ocifs
