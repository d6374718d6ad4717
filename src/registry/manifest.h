// Manifests and indexes (OCI and Docker schema 2): parsing and platform
// selection. Pure functions over bytes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ocifs/status.h"
#include "registry/descriptor.h"
#include "registry/platform.h"

namespace ocifs {

inline constexpr size_t kMaxManifestBytes = size_t{4} << 20;
inline constexpr size_t kMaxLayers = 4096;

// The Accept header value listing the four supported manifest types.
std::string ManifestAcceptHeader();
bool IsIndexMediaType(std::string_view media_type);
bool IsImageManifestMediaType(std::string_view media_type);

struct ParsedManifest {
  bool is_index = false;
  std::string media_type;            // from the document, else the Content-Type, else inferred
  std::string artifact_type;         // OCI 1.1 "artifactType" of an image manifest; "" = none
  Descriptor config;                 // image manifests
  std::vector<Descriptor> layers;    // image manifests, bottom to top
  std::vector<Descriptor> manifests; // indexes
};

// Parses a manifest or index. `content_type` is the HTTP Content-Type (or the
// descriptor's mediaType; parameters ignored; may be empty). `what` names it in
// errors. Docker schema1 is kUnsupported with a clear message; other unknown
// types kUnsupported; malformed documents kCorrupt.
Result<ParsedManifest> ParseManifest(std::string_view bytes, std::string_view content_type, std::string_view what);

// The index entry for `want` (Platform::Matches), first match in index order.
// kNotFound "no image for linux/s390x in <what>; it has linux/amd64, linux/arm64/v8".
Result<Descriptor> SelectPlatform(const ParsedManifest& index, const Platform& want, std::string_view what);

}  // namespace ocifs
