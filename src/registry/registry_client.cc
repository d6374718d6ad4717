#include "registry/registry_client.h"

#include <algorithm>

#include "registry/blob_source.h"
#include "registry/digest.h"
#include "registry/image_resolver.h"
#include "registry/manifest.h"
#include "registry/referrers.h"

namespace ocifs {

Result<std::unique_ptr<RegistryClient>> RegistryClient::Open(const Reference& ref, const RegistryOptions& options) {
  if (ref.transport != Reference::Transport::kDocker) return InvalidArgument("not a docker:// reference: " + ref.ToString());
  OCIFS_ASSIGN_OR_RETURN(Platform platform, WantedPlatform(options));
  OCIFS_ASSIGN_OR_RETURN(auto session, PullEndpoints::Open(ref, options));
  return std::make_unique<RegistryClient>(ref, std::move(platform), std::move(session),
                                          options.small_blob_dir);
}

Result<ResolvedImage> RegistryClient::Resolve(const BesideConfigFn& beside_config) {
  OCIFS_ASSIGN_OR_RETURN(FetchedManifest top, session_->GetManifest(ref_.ManifestRef()));
  auto fetch_manifest = [this](const Descriptor& d) -> Result<FetchedManifest> {
    if (d.size > kMaxManifestBytes) return Corrupt("manifest " + d.digest + " is larger than 4 MiB");
    return session_->GetManifest(d.digest);
  };
  auto fetch_blob = [this](const Descriptor& d) { return FetchBlob(d); };
  return ResolveImage(ref_, std::move(top), platform_, fetch_manifest, fetch_blob, beside_config);
}

Result<ByteSourcePtr> RegistryClient::OpenBlob(const Descriptor& blob) {
  OCIFS_RETURN_IF_ERROR(ValidateDigest(blob.digest));
  return ByteSourcePtr(std::make_shared<BlobSource>(session_, blob));
}

Result<std::vector<uint8_t>> RegistryClient::FetchBlob(const Descriptor& blob) {
  OCIFS_RETURN_IF_ERROR(ValidateDigest(blob.digest));
  if (blob.size > kMaxFetchBlobBytes) {
    return InvalidArgument("blob " + blob.digest + " (" + std::to_string(blob.size) +
                           " bytes) is too large to fetch whole (limit 64 MiB)");
  }
  if (auto kept = small_blobs_.Get(blob); kept.has_value()) return std::move(*kept);
  std::vector<uint8_t> bytes(static_cast<size_t>(blob.size));
  if (!bytes.empty()) OCIFS_RETURN_IF_ERROR(session_->ReadBlobRange(blob, 0, bytes));
  OCIFS_RETURN_IF_ERROR(VerifyDigest(bytes, blob.digest, "blob " + blob.digest + " of " + session_->Name()));
  small_blobs_.Put(blob, bytes);
  return bytes;
}

Result<FetchedManifest> RegistryClient::FetchManifest(const Descriptor& manifest) {
  OCIFS_RETURN_IF_ERROR(ValidateDigest(manifest.digest));
  return session_->GetManifest(manifest.digest);  // by digest: verified
}

Result<std::vector<Platform>> RegistryClient::ListPlatforms() {
  OCIFS_ASSIGN_OR_RETURN(FetchedManifest top, session_->GetManifest(ref_.ManifestRef()));
  OCIFS_ASSIGN_OR_RETURN(ParsedManifest parsed,
                         ParseManifest(top.bytes, top.media_type, "manifest of " + ref_.ToString()));
  std::vector<Platform> platforms;
  if (!parsed.is_index) return platforms;
  for (const Descriptor& d : parsed.manifests) {
    if (!d.platform || d.platform->os == "unknown" || d.platform->architecture == "unknown") continue;
    if (std::find(platforms.begin(), platforms.end(), *d.platform) == platforms.end()) platforms.push_back(*d.platform);
  }
  if (platforms.empty()) return NotFound("the image index " + ref_.ToString() + " lists no platform");
  return platforms;
}

Result<ReferrerList> RegistryClient::ListReferrers(const std::string& subject_digest,
                                                   const std::string& artifact_type) {
  return ocifs::ListReferrers(session_->primary(), subject_digest, artifact_type);
}

}  // namespace ocifs
