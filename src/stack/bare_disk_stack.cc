// ImageStack's bare disk layers (image/bare_disk.h): a layer that is a disk
// by itself skips the tar entry stage; everything else of the read path is
// a containerDisk's (docs/bare-disks.md).
#include <spdlog/spdlog.h>

#include <array>

#include "decode/decoder.h"
#include "disk/disk_format.h"
#include "image/bare_disk_source.h"
#include "stack/image_stack.h"

namespace ocifs {
namespace {

std::string LayerName(const BareDiskLayer& disk) {
  return "layer " + std::to_string(disk.layer) + " (" + disk.digest + ")";
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Status ImageStack::OpenBareLayer(LayerView& view, const DecoderOptions& decoder_options) const {
  const BareDiskLayer& disk = *view.bare;
  const std::string what = LayerName(disk) + ", a disk by its " + disk.reason;
  // The descriptor names the compression; the bytes must agree (a disk's
  // own bytes are never taken for a compressed stream).
  auto magic = DetectCompression(*view.blob);
  if (!magic.ok()) return magic.status().WithContext(what);
  if (disk.compression != Compression::kNone && *magic != disk.compression) {
    const std::string found = *magic == Compression::kNone ? std::string("not compressed")
                                                           : std::string(CompressionName(*magic)) + " data";
    return Corrupt(what + ": it should be " + std::string(CompressionName(disk.compression)) +
                   "-compressed, but its bytes are " + found);
  }
  if (disk.compression == Compression::kNone && *magic != Compression::kNone) {
    spdlog::warn("{}: its bytes look {}-compressed, but neither its media type nor its title says so; "
                 "serving them as they are",
                 what, CompressionName(*magic));
  }
  view.compression = disk.compression;
  DecoderOptions options = decoder_options;
  options.layer_annotations.clear();  // no zstd:chunked TOC: the layer is no tar
  auto decoded = OpenDecoded(view.blob, view.compression, options);
  if (!decoded.ok()) return decoded.status().WithContext(what);
  view.decoded = *decoded;
  if (options_.blob_reads.recorder && view.decoded->access() == ByteSource::Access::kStream) {
    options_.blob_reads.recorder->Exclude(view.descriptor.digest);
  }
  std::array<uint8_t, 512> head{};
  auto n = view.decoded->ReadAt(0, head);
  if (!n.ok()) return n.status().WithContext(what);
  std::span<const uint8_t> bytes(head.data(), *n);
  if (IsTarHeader(bytes)) return Corrupt(what + ": it holds a tar archive, not a disk");
  const bool qcow2 = bytes.size() >= 4 && std::string_view(reinterpret_cast<const char*>(bytes.data()), 4) == "QFI\xfb";
  if (EndsWith(disk.media_type, "+qcow2") && !qcow2) {
    return Corrupt(what + ": its media type says qcow2, but it does not start with qcow2's magic");
  }
  view.index = std::make_shared<TarIndex>(TarIndex::Empty(view.decoded->Describe()));
  spdlog::info("{}: disk '{}', {} compression", what, disk.name, CompressionName(view.compression));
  return Status::Ok();
}

Result<ByteSourcePtr> ImageStack::BareDiskFile(const BareDiskLayer& disk, bool need_size) const {
  if (disk.layer >= layers_.size() || !layers_[disk.layer].bare) {
    return Internal("disk " + disk.name + " names no bare disk layer");
  }
  const LayerView& layer = layers_[disk.layer];
  return BareDiskSource::Open(layer.decoded, disk.declared_size, need_size,
                              "disk " + disk.name + " (" + LayerName(disk) + ")");
}

Result<ByteSourcePtr> ImageStack::OpenBareDisk(const BareDiskLayer& disk) const {
  if (disk.layer >= layers_.size() || !layers_[disk.layer].bare) {
    return Internal("disk " + disk.name + " names no bare disk layer");
  }
  const LayerView& layer = layers_[disk.layer];
  const std::string what = "disk " + disk.name + " (" + LayerName(disk) + ")";
  // Only the head: a stream's tail is not read before the mount is ready.
  auto format = DetectDiskFormat(*layer.decoded, /*check_trailer=*/false);
  if (!format.ok()) return format.status().WithContext(what);
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr file, BareDiskFile(disk, *format == DiskFormat::kRaw));
  const bool stream = layer.decoded->access() == ByteSource::Access::kStream;
  // Kept pieces are keyed by the layer and offset 0: a tar's data never starts there.
  return ViewOfFile(std::move(file), disk.layer, 0, !stream, what);
}

}  // namespace ocifs
