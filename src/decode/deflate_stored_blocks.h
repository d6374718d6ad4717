// FindStoredBlocks: where a gzip blob's deflate streams hold stored blocks
// (what gzip writes for incompressible data: a qcow2's compressed clusters)
// of at least a few KiB, as a raw span table (docs/raw-spans-format.md), so a
// mount copies the bytes a read needs there instead of inflating a span from
// its checkpoint. One sequential inflate of the whole blob (`oci-fs
// accelerate`, beside the checkpoint index).
#pragma once

#include <cstdint>

#include "decode/raw_span_table.h"
#include "ocifs/byte_source.h"

namespace ocifs {

// Reads `blob` (a gzip file of one or more members, of known size) front to
// back. Stored blocks shorter than `min_size` are left out. Errors: the
// blob's reads, or kCorrupt (naming the offset) where it does not inflate.
// Thread safety: a pure function; `blob` must be safe to read.
[[nodiscard]] Result<RawSpanTable> FindStoredBlocks(const ByteSource& blob, uint32_t unit = 4096,
                                                    uint32_t min_size = 4096);

}  // namespace ocifs
