// ResolveImage: from the top manifest (image or index) to a ResolvedImage,
// shared by the registry and OCI layout sources; they plug in how to fetch.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "registry/image_source.h"

namespace ocifs {

// Manifest bytes as fetched; digest already verified (or computed, for a tag).

using FetchManifestFn = std::function<Result<FetchedManifest>(const Descriptor&)>;  // by digest, verified
using FetchBlobFn = std::function<Result<std::vector<uint8_t>>(const Descriptor&)>;  // verified

// Follows indexes (at most 3 deep) choosing `want`, fetches the config;
// `beside_config` (may be empty) runs on another thread meanwhile
// (ImageSource::BesideConfigFn). Pure apart from the callbacks; thread-compatible.
Result<ResolvedImage> ResolveImage(const Reference& ref, FetchedManifest top, const Platform& want,
                                   const FetchManifestFn& fetch_manifest, const FetchBlobFn& fetch_blob,
                                   const ImageSource::BesideConfigFn& beside_config = {});

}  // namespace ocifs
