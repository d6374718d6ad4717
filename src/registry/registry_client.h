// RegistryClient: the ImageSource of a docker:// reference.
#pragma once

#include <memory>

#include "registry/image_source.h"
#include "registry/registry_session.h"

namespace ocifs {

// Thread safety: safe for concurrent use (state lives in the shared session).
class RegistryClient final : public ImageSource {
 public:
  // Validates options and loads credentials/TLS files; contacts nothing.
  [[nodiscard]] static Result<std::unique_ptr<RegistryClient>> Open(const Reference& ref,
                                                                    const RegistryOptions& options);

  Result<ResolvedImage> Resolve() override;
  Result<ByteSourcePtr> OpenBlob(const Descriptor& blob) override;
  Result<std::vector<uint8_t>> FetchBlob(const Descriptor& blob) override;

  RegistryClient(Reference ref, Platform platform, std::shared_ptr<RegistrySession> session)
      : ref_(std::move(ref)), platform_(std::move(platform)), session_(std::move(session)) {}

 private:
  const Reference ref_;
  const Platform platform_;
  std::shared_ptr<RegistrySession> session_;
};

}  // namespace ocifs
