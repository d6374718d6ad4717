// RegistryClient: the ImageSource of a docker:// reference.
#pragma once

#include <memory>

#include "registry/image_source.h"
#include "registry/pull_endpoints.h"
#include "registry/small_blob_store.h"

namespace ocifs {

// Thread safety: safe for concurrent use (state lives in the shared session).
class RegistryClient final : public ImageSource {
 public:
  // Validates options, loads registries.conf and credentials/TLS files;
  // contacts nothing. A reference registries.conf blocks is kPermissionDenied.
  [[nodiscard]] static Result<std::unique_ptr<RegistryClient>> Open(const Reference& ref,
                                                                    const RegistryOptions& options);

  using ImageSource::Resolve;
  Result<ResolvedImage> Resolve(const BesideConfigFn& beside_config) override;
  Result<ByteSourcePtr> OpenBlob(const Descriptor& blob) override;
  Result<std::vector<uint8_t>> FetchBlob(const Descriptor& blob) override;
  Result<ReferrerList> ListReferrers(const std::string& subject_digest, const std::string& artifact_type) override;
  Result<FetchedManifest> FetchManifest(const Descriptor& manifest) override;
  Result<std::vector<Platform>> ListPlatforms() override;

  RegistryClient(Reference ref, Platform platform, std::shared_ptr<PullEndpoints> endpoints,
                 std::string small_blob_dir)
      : ref_(std::move(ref)), platform_(std::move(platform)), session_(std::move(endpoints)),
        small_blobs_(std::move(small_blob_dir)) {}

 private:
  const Reference ref_;
  const Platform platform_;
  std::shared_ptr<PullEndpoints> session_;  // mirrors (registries.conf), then the registry
  SmallBlobStore small_blobs_;
};

}  // namespace ocifs
