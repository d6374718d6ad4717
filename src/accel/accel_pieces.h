// AccelPieces: fetching one piece of an acceleration artifact
// (docs/accel-format.md) and keeping it in the cache directory, checked as
// far as it can be without the layer ("Trust"): a layer's index (a side
// file the layer's decoder loads), its tar index, its raw span table, a
// profile. AccelLoader (accel_loader.h) decides which pieces a mount takes.
// Stateless functions; safe for concurrent use on distinct pieces. Each
// blocks on the registry (one blob fetch) unless the piece is kept already.
#pragma once

#include <memory>
#include <string>

#include "accel/accel_manifest.h"
#include "cache/access_profile.h"
#include "decode/raw_span_table.h"
#include "ocifs/status.h"
#include "registry/image_source.h"

namespace ocifs {

class ChunkCache;

bool PathExists(const std::string& path);

// The layer's side file (docs/cache-format.md) an index of its kind is kept in.
std::string IndexSidePath(ChunkCache& cache, const AccelManifest::LayerIndex& index);

// Fetches an index piece and writes it as the layer's side file at `path`:
// checked as far as it can be without the layer, a gzip index's runs of
// zeros dropped. kUnsupported for a table-first index (read lazily instead).
[[nodiscard]] Status InstallIndex(ImageSource& pieces, const AccelManifest::LayerIndex& index, const std::string& path);

// Keeps a tar index piece as side/<layer>.tarindex-accel: it must name a
// layer of `image` by digest and size and parse as a complete version 2
// index. Fetches nothing when the layer has a walked index or the piece is kept.
[[nodiscard]] Status InstallTarIndex(ImageSource& pieces, const AccelManifest::TarIndexPiece& t,
                                     const ResolvedImage& image, ChunkCache& cache);

// A profile piece, kept in the cache by its digest (else fetched and kept), parsed.
[[nodiscard]] Result<std::shared_ptr<const AccessProfile>> LoadProfile(ImageSource& pieces, const Descriptor& piece,
                                                                       ChunkCache& cache, const std::string& what);

// A raw span table of layer `r` (kept in the cache by its digest, else
// fetched and kept), parsed and checked against the layer's size.
[[nodiscard]] Result<std::shared_ptr<const RawSpanTable>> LoadRawSpans(ImageSource& pieces,
                                                                       const AccelManifest::LayerPiece& r,
                                                                       ChunkCache& cache);

}  // namespace ocifs
