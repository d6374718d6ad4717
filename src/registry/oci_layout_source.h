// OciLayoutSource: the ImageSource of an oci:PATH[:TAG] reference — a local
// OCI image layout directory (index.json, blobs/<alg>/<hex>).
#pragma once

#include <memory>
#include <string>

#include "registry/image_source.h"

namespace ocifs {

// Thread safety: safe for concurrent use (immutable; reads files per call).
// The directory must not change while open.
class OciLayoutSource final : public ImageSource {
 public:
  // Checks the directory holds an index.json; reads nothing else yet.
  [[nodiscard]] static Result<std::unique_ptr<OciLayoutSource>> Open(const Reference& ref,
                                                                     const RegistryOptions& options);

  // The index.json entry whose org.opencontainers.image.ref.name is the tag;
  // with no tag, the only entry; with a digest, the entry (or blob) of it.
  using ImageSource::Resolve;
  Result<ResolvedImage> Resolve(const BesideConfigFn& beside_config) override;
  // A FileSource over blobs/<alg>/<hex>; kCorrupt if its size differs.
  Result<ByteSourcePtr> OpenBlob(const Descriptor& blob) override;
  Result<std::vector<uint8_t>> FetchBlob(const Descriptor& blob) override;

  OciLayoutSource(Reference ref, Platform platform) : ref_(std::move(ref)), platform_(std::move(platform)) {}

 private:
  std::string BlobPath(const std::string& digest) const;
  Result<std::string> ReadFileBounded(const std::string& path, uint64_t max_bytes) const;

  const Reference ref_;
  const Platform platform_;
};

}  // namespace ocifs
