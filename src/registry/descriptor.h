// Descriptor: a typed, sized, digest-addressed reference to a blob, and the
// media types the registry module knows.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "ocifs/status.h"
#include "registry/platform.h"

namespace ocifs {

namespace media_type {
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
}  // namespace media_type

// Plain value type. Every member has a default, so designated initializers
// may name only some ({.digest = d, .size = n}) without -Wextra warnings.
struct Descriptor {
  std::string media_type{}, digest{};
  uint64_t size = 0;  // bytes
  std::map<std::string, std::string> annotations{};
  std::optional<Platform> platform{};
  std::string artifact_type{};  // OCI 1.1 "artifactType" (artifacts, referrers lists); "" = none
};

enum class LayerCompression { kNone, kGzip, kZstd, kUnknown };  // from the layer media type

// OCI and Docker layer types, incl. the non-distributable ones.
LayerCompression CompressionOfMediaType(std::string_view media_type);
std::string_view LayerCompressionName(LayerCompression c);  // "none","gzip","zstd","unknown"

// Parses a descriptor object; validates the digest and bounds the size.
// `what` names it in errors ("layer 2 of manifest sha256:..").
Result<Descriptor> DescriptorFromJson(const nlohmann::json& j, std::string_view what);

// The JSON object of a descriptor: mediaType, digest, size, and artifactType,
// annotations, platform when set. DescriptorFromJson reads it back unchanged.
nlohmann::json DescriptorToJson(const Descriptor& d);

}  // namespace ocifs
