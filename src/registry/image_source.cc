#include "registry/image_source.h"

#include "registry/oci_layout_source.h"
#include "registry/registry_client.h"

namespace ocifs {

Result<ReferrerList> ImageSource::ListReferrers(const std::string& subject_digest, const std::string&) {
  return Unsupported("referrers of " + subject_digest + ": only a registry lists referrers");
}

Result<FetchedManifest> ImageSource::FetchManifest(const Descriptor& manifest) {
  return Unsupported("manifest " + manifest.digest + ": only a registry serves artifacts by digest");
}

Result<std::vector<Platform>> ImageSource::ListPlatforms() {
  return Unsupported("listing an image's platforms: only a registry does");
}

Result<Platform> WantedPlatform(const RegistryOptions& options) {
  if (options.platform.empty()) return Platform::Host();
  return Platform::Parse(options.platform);
}

Result<std::unique_ptr<ImageSource>> OpenImageSource(const Reference& ref, const RegistryOptions& options) {
  if (ref.transport == Reference::Transport::kOciLayout) {
    OCIFS_ASSIGN_OR_RETURN(auto src, OciLayoutSource::Open(ref, options));
    return std::unique_ptr<ImageSource>(std::move(src));
  }
  OCIFS_ASSIGN_OR_RETURN(auto src, RegistryClient::Open(ref, options));
  return std::unique_ptr<ImageSource>(std::move(src));
}

}  // namespace ocifs
