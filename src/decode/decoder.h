// OpenDecoded: the seekable decompression stage of the read path
// (compressed layer blob -> decompressed tar stream).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "decode/compression.h"
#include "decode/raw_span_table.h"
#include "decode/zstd_frames.h"
#include "base/decoded_store.h"
#include "base/unique_fd.h"
#include "ocifs/byte_source.h"
#include "sched/scheduler.h"

namespace ocifs {

struct DecoderOptions {
  // Runs the first pass and lends the decode pool; null: Scheduler::Shared().
  std::shared_ptr<Scheduler> scheduler;
  // gzip: load the checkpoint index from here if present and valid for this
  // blob; save it here (atomically: temp file + fsync + rename, version 3
  // with block checksums) once the first pass completes. "" = keep it in
  // memory only. An index loaded with checksums has its reads verified, and
  // one that proves wrong is rebuilt (OpenDecoded).
  std::string index_path;
  // gzip, with index_path: the first pass holds flock(LOCK_EX) on this file
  // while it streams the layer (docs/cache-format.md "Fetch leases"). A pass
  // that finds it held (another process streams the same layer) waits until
  // it is free, then adopts the index that process saved at index_path (its
  // reads verified as a loaded index's), and streams the layer itself only
  // if there is none (that process died or failed). "" = no lease.
  std::string pass_lease_path;
  // gzip, with pass_lease_path: that lease, taken already by the opener (the
  // image stack takes it before it starts the layer's stream early, so that
  // only the process that will stream the layer does). The pass uses it
  // instead of waiting for it; it is released with it (when the index is
  // saved, or when the source goes if the pass never runs). Null or invalid: none.
  std::shared_ptr<UniqueFd> pass_lease_taken;
  // gzip: a version 4 index of this blob from elsewhere (an acceleration
  // artifact's piece, through the chunk cache; docs/gzip-index-format.md
  // "Version 4: table first"), used when none is saved at index_path: its
  // table is read at open, each checkpoint's window when a read first needs
  // it. Untrusted (verified reads, IndexFallbackSource); a table that does
  // not parse, or is for another blob, is ignored for a first pass. Null: none.
  ByteSourcePtr gzip_index_blob;
  // What names it in logs and errors: the index ("sha256:<its digest>"), and
  // where it came from ("acceleration artifact REGISTRY/REPO@sha256:..").
  std::string gzip_index_name;
  std::string gzip_index_from;
  // gzip, with pass_lease_path and a decoded_store: the pass that holds the
  // lease publishes here how far it kept its output in decoded_store
  // (SharedPassProgress), and a mount that waits for another process's pass
  // serves the reads behind that point from those chunks (PassOutputFollower)
  // instead of waiting for the pass's end. "" = none.
  std::string pass_progress_path;
  // zstd of several frames: load its frame table from here if present and
  // valid for this blob (its frames are then not located: no seek-table read,
  // no walk, which reads the whole blob); save it here after a walk found the
  // frames. "" = locate them at every open. A table with CRCs (installed from
  // an acceleration artifact) has every frame checked, and one that proves
  // wrong is replaced by the frames located anew.
  std::string frame_table_path;
  // zstd read as a stream (one frame): load a checkpoint index from here if
  // present and valid for this blob (installed from an acceleration
  // artifact; docs/zstd-checkpoint-format.md): reads are then served at
  // random, verified; an index that proves wrong is replaced by a mark (so
  // it is not installed again) and the layer is streamed. "" = none.
  std::string zstd_checkpoint_path;
  // zstd read as a stream: a version 2 checkpoint index of this blob from
  // elsewhere (an acceleration artifact's piece, through the chunk cache;
  // docs/zstd-checkpoint-format.md "Version 2: table first"), used when no
  // file is at zstd_checkpoint_path: its table is read at open, each
  // checkpoint's dictionary when a read first decodes from it. Verified as
  // the file's; one that proves wrong leaves the mark at
  // zstd_checkpoint_path. A table that does not parse, or is for another
  // blob, is ignored (logged) for the stream. Null: none. `from` names where
  // it came from in logs ("acceleration artifact REGISTRY/REPO@sha256:..").
  ByteSourcePtr zstd_checkpoint_blob;
  std::string zstd_checkpoint_from;
  // zstd read through a checkpoint index: where the blob holds decoded
  // bytes verbatim (its raw blocks; docs/raw-spans-format.md, from an
  // acceleration artifact): reads there copy the blob's bytes, checked
  // (RawSpanSource), and are recorded as those bytes. A table for another
  // blob or decoded size is ignored (logged). Null: none.
  std::shared_ptr<const RawSpanTable> raw_spans;
  // gzip read through an index, or zstd read by frames: where the compressed
  // bytes each read needed go (`oci-fs mount --record-profile`): the part of
  // each span (frame) it decodes that made the read's output (in
  // kInputMarkBytes of output, gzip_inflate.h; ZstdFrameSource::RecordNeeded),
  // not the whole span from its checkpoint, so a profile names what a boot
  // needs whatever checkpoints the recording node had. Called once with
  // length 0 when the source opens with an index (the reports start), then
  // per read; concurrently. Null: none.
  std::function<void(uint64_t offset, uint64_t length)> record_compressed;
  // The recording's unit (AccessRecorder::unit()): a zstd source reports a
  // read's bytes within the units wholly inside the frame or segment it
  // decoded, where there are any, so that a profile unit at its edge does not
  // also name the neighbouring one when the profile is fitted to them. 0: as they are.
  uint64_t record_unit = 0;
  // Called once, when the source opens with an index (gzip: its own, saved,
  // or an artifact's, each span from the byte holding its checkpoint's first
  // bits to the one holding the next's; zstd: its frames, or its checkpoint
  // index's segments from their restart point), with each span's compressed
  // bytes [first, second) in order, so that a profile can be fitted to the
  // spans reads will decode whole (src/stack/accel_profile.h). Null: none.
  std::function<void(const std::vector<std::pair<uint64_t, uint64_t>>& spans)> index_spans;
  // gzip: bytes of decompressed output between checkpoints (also the unit of
  // read-side decompression).
  uint64_t checkpoint_spacing = 1ull << 20;
  // gzip: the spacing grows so that a blob gets about this many checkpoints at
  // most (compressed size / max_checkpoints), which bounds the memory their
  // windows take (up to 32 KiB each for incompressible data): 16 MiB at 512,
  // whatever the layer's size. Larger layers pay with longer spans per read.
  uint64_t max_checkpoints = 512;
  // gzip, first pass: ranges [first, second) of the compressed blob a
  // workload is known to read (an access profile's chunks; `oci-fs
  // accelerate --profile`), any order. The index gets, besides the regular
  // checkpoints, one just before each range (at the last deflate block
  // boundary or member start whose output is at or before the start of the
  // checksum block there), one every checkpoint_target_spacing inside it,
  // and one at the first restart point after it and past the end of the
  // checksum block it ends in, so a read there inflates and fetches little
  // beyond its own bytes (GzipTargetPlacer). Ranges closer than
  // checkpoint_target_gap compressed bytes merge (the bytes between are
  // fetched with them); a target that close after a checkpoint needs none; at
  // most max_target_checkpoints are placed (gap and spacing double to fit),
  // whose compressed windows take at most max_target_window_bytes (an index in
  // an acceleration artifact must stay under 64 MiB). Empty: none (a mount's
  // first pass).
  std::vector<std::pair<uint64_t, uint64_t>> checkpoint_targets;
  uint64_t checkpoint_target_gap = 32ull << 10;
  uint64_t checkpoint_target_spacing = 256ull << 10;  // 0: checkpoint_target_gap
  uint64_t max_target_checkpoints = 3584;  // with max_checkpoints' 512: about 4096 in all
  uint64_t max_target_window_bytes = 24ull << 20;
  // gzip, first pass: the block size of the index's checksums (bytes; a
  // power of two in 4 KiB..16 MiB, docs/gzip-index-format.md). A mount
  // verifies whole blocks, so a read inflates from the block's start and to
  // its end: `oci-fs accelerate` ships 16 KiB blocks, a mount's own index
  // 64 KiB (GzipIndex::kDefaultBlockSize).
  uint32_t checksum_block_size = 65536;
  // First pass (gzip, single-frame zstd): compressed bytes kept hinted ahead
  // of the pass (ByteSource::Prefetch; SequentialReader's `ahead`), so a
  // cached blob has several range requests in flight while the pass
  // decodes what arrived. 0: none (the pass reads one piece at a time).
  uint64_t pass_read_ahead = 32ull << 20;
  // Start the first sequential pass in a background thread at open. If false,
  // the first read that needs it starts it.
  bool background_pass = true;
  // zstd of several frames whose table this open found (a seek table or a
  // walk: no artifact vouched for it, no earlier mount saved it): a blob of
  // at most this many bytes is also fetched whole, front to back, in the
  // background (ZstdFrameSource::StartFill, half of pass_read_ahead), as a
  // stream layer's pass would; reads ahead of it fetch their own frames.
  // Needs background_pass. 0: never.
  uint64_t fill_frames_up_to = 0;
  // If set, the fill is not started at open: `start` is handed to this, to
  // be called once the caller's own first reads are done (a mount's are the
  // tar headers: they should not share the link with the fill).
  std::function<void(std::function<void()> start)> defer_fill;
  // Single-frame zstd: where decompressed chunks go (default: a memory store
  // with 4 MiB chunks). gzip, first pass: where its output is kept for the
  // reads behind its frontier (PassOutputKeeper) if keep_pass_output; none
  // when null.
  std::shared_ptr<DecodedChunkStore> decoded_store;
  bool keep_pass_output = true;
  // Bytes of decompressed segments (gzip checkpoint spans, zstd frames) kept
  // in memory per decoder for neighbouring reads.
  uint64_t segment_cache_bytes = 8ull << 20;
  // The layer descriptor's annotations. A zstd:chunked layer's TOC
  // position and checksum there let it be read at random through its TOC
  // (OpenZstdChunked, docs/zstd-chunked.md); so does an eStargz layer's TOC
  // digest (OpenEstargz, docs/estargz.md). Empty: none.
  std::map<std::string, std::string> layer_annotations;
  // zstd:chunked: keep the layer's compressed TOC here (checked against the
  // checksum annotation when loaded), so a later open does not fetch it; its
  // frame table goes to frame_table_path. "" = fetch it at every open.
  std::string zstd_chunked_toc_path;
};

// kNone returns `compressed` itself. kGzip: an eStargz layer
// (options.layer_annotations) through its TOC (OpenEstargz); else a GzipSource; one whose index
// was loaded from options.index_path inside an IndexFallbackSource (a wrong
// index falls back to a first pass, which saves a new one there). kZstd: a
// zstd:chunked layer (options.layer_annotations) through its TOC
// (OpenZstdChunked); else a ZstdFrameSource when the frames can be located
// (seek table, or >= 2 frames of <= 32 MiB with content sizes), else a
// ZstdStreamSource.
// Errors: kCorrupt if the blob's structure is malformed where open looks at it.
[[nodiscard]] Result<ByteSourcePtr> OpenDecoded(ByteSourcePtr compressed, Compression compression,
                                                const DecoderOptions& options);

// The frames by which OpenDecoded reads a zstd blob at random (a seek table,
// or >= 2 frames of <= 32 MiB with content sizes, found by walking it all),
// without CRCs; nullopt if it reads it as a stream. For `oci-fs accelerate`.
[[nodiscard]] Result<std::optional<std::vector<ZstdFrame>>> LocateZstdFrames(const ByteSource& compressed);

}  // namespace ocifs
