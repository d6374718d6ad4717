// AccelProfile: the access profile `oci-fs accelerate` ships, fitted to the
// gzip indexes it ships with it (docs/accel-format.md, "Profiles fitted to
// the index"). A recorded profile names the compressed bytes a boot's reads
// needed; a mount with the artifact reads them through the artifact's index,
// which inflates each span it touches whole, from its checkpoint, and needs
// that checkpoint's window from the index blob. So for each gzip layer the
// shipped profile names, in the recorded order:
//
//   * the layer's units of every span of the index that holds a unit the
//     recording names (the bytes between a checkpoint and the recorded
//     region, and to the span's end, come with the prefetch, not with a
//     read's own round trip);
//   * a section for the index blob itself: the units holding those spans'
//     checkpoint windows, in the order their spans are first needed, so the
//     mount fetches them with the layer's pieces rather than one window per
//     read when a read first inflates from it.
//
// Stateless functions; safe for concurrent use.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cache/access_profile.h"
#include "decode/gzip_index.h"
#include "decode/raw_span_table.h"
#include "decode/zstd_checkpoint_index.h"

namespace ocifs {

// A gzip layer's index as shipped: its checkpoints (with where each window
// lies in the index blob: zwindow_offset, zwindow_length), the layer's
// compressed size, and the index blob's digest.
struct ShippedGzipIndex {
  std::string layer_digest;
  uint64_t layer_size = 0;
  const GzipIndex* index = nullptr;  // checkpoints as GzipIndexV4::ParseTable gives them
  std::string index_digest;
  const RawSpanTable* raw = nullptr;  // its stored blocks, shipped beside it; null: none
};

// `profile` with `gzip`'s layer fitted as above (a profile that does not name
// the layer is returned as it is). The units stay profile.chunk_size bytes.
// A unit whose bytes are all stored blocks' (their headers aside) stays as it
// is: a mount with the raw span table copies those bytes (RawSpanSource).
AccessProfile FitProfileToGzipIndex(const AccessProfile& profile, const ShippedGzipIndex& gzip);

// A zstd layer's checkpoint index as shipped (version 2: each dictionary's
// place in the index blob, zdict_offset and zdict_length).
struct ShippedZstdCheckpoints {
  std::string layer_digest;
  uint64_t layer_size = 0;
  const ZstdCheckpointIndex* index = nullptr;  // as ZstdCheckpointIndexV2::ParseTable gives it
  std::string index_digest;
  const RawSpanTable* raw = nullptr;  // its raw blocks, shipped beside it; null: none
};

// `profile` with `zstd`'s layer fitted as a gzip layer's is: each segment that
// holds a recorded unit, from its restart checkpoint (a read decodes it so),
// and a section for the index blob naming those restart points' dictionaries.
// A unit whose bytes are all raw blocks' (their 3-byte headers aside) stays as
// it is: a mount with the raw span table copies those bytes (RawSpanSource).
AccessProfile FitProfileToZstdCheckpoints(const AccessProfile& profile, const ShippedZstdCheckpoints& zstd);

// The spans of an index as a mount has it (DecoderOptions::index_spans): each
// span's compressed bytes [first, second), in order.
using CompressedSpans = std::vector<std::pair<uint64_t, uint64_t>>;
// `profile` with `layer_digest`'s units widened to the spans that hold them
// (FitProfileToGzipIndex without the windows): a mount whose own index has
// longer spans than the one the profile was fitted to (a node's own first
// pass: about 1 MiB of output each) prefetches what its reads inflate.
AccessProfile FitProfileToSpans(const AccessProfile& profile, const std::string& layer_digest, uint64_t layer_size,
                                const CompressedSpans& spans);

}  // namespace ocifs
