// Bare disk layers: a layer that is a VM disk by itself, with no tar around
// it (KubeVirt's VM export artifacts, ORAS-pushed disk files, LF Edge's disk
// layers). Which layers are such disks, what they are called, how they are
// compressed and how large they say they are (docs/bare-disks.md).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "decode/compression.h"
#include "ocifs/status.h"
#include "registry/descriptor.h"

namespace ocifs {

namespace bare_disk {
inline constexpr std::string_view kKubevirtVm = "application/vnd.kubevirt.virtualmachine.v1";
inline constexpr std::string_view kKubevirtTemplate = "application/vnd.kubevirt.virtualmachinetemplate.v1";
inline constexpr std::string_view kKubevirtConfig = "application/vnd.kubevirt.virtualmachine.config.v1+json";
inline constexpr std::string_view kKubevirtRawZstd = "application/vnd.kubevirt.disk.raw+zstd";
inline constexpr std::string_view kNameAnnotation = "io.kubevirt.disk.name";
inline constexpr std::string_view kSizeAnnotation = "io.kubevirt.disk.size";
inline constexpr std::string_view kTitleAnnotation = "org.opencontainers.image.title";
// ORAS marks a pushed directory (a tar, maybe gzipped) with "true".
inline constexpr std::string_view kOrasUnpackAnnotation = "io.deis.oras.content.unpack";
}  // namespace bare_disk

// What the descriptor of a bare disk layer says about it. Plain value type;
// every member has a default (designated initializers may name only some).
struct BareDiskLayer {
  size_t layer = 0;        // index in the manifest's layers, bottom = 0
  std::string digest{};    // the layer blob's
  std::string name{};      // io.kubevirt.disk.name, else the title without its extensions, else "disk-<12 hex>"
  std::string title{};     // org.opencontainers.image.title, "" if none
  std::string media_type{};
  Compression compression = Compression::kNone;  // what the media type (else the title) names
  std::optional<uint64_t> declared_size{};       // io.kubevirt.disk.size, bytes
  std::string reason{};    // why it is a disk: "media type ...", "title ...", "its bytes (qcow2)"
};

// By the descriptor alone: a disk media type (application/vnd.kubevirt.disk.*,
// application/vnd.lfedge.disk.*, or any media type whose last path element
// begins with "disk." or contains ".disk."), or a title naming a disk file
// (*.raw, *.img, *.qcow2, *.iso, optionally followed by .gz, .gzip, .zst or
// .zstd). nullopt: an ordinary (tar) layer.
// Errors (kCorrupt, naming the layer): a title with '/', '\\', "..", a NUL or
// nothing but dots; a name annotation that is not a plain file name; a size
// annotation that is not a Kubernetes quantity of whole bytes; a media type
// naming a compression other than gzip, zstd or none.
// The compression: "+zstd"/"+gzip" at the end of the media type (also
// ".tar+zstd", ".tar+gzip"), else the title's ".zst"/".zstd"/".gz"/".gzip",
// else none.
[[nodiscard]] Result<std::optional<BareDiskLayer>> ClassifyLayer(const Descriptor& layer, size_t index);

// By the bytes: a layer with no disk media type or title whose decompressed
// stream starts with qcow2's magic ("QFI\xfb") and whose first 512 bytes are
// not a tar header (ustar magic or a valid header checksum).
bool LooksLikeBareQcow2(std::span<const uint8_t> head);
// Whether the 512 bytes are a tar header: "ustar" at 257, or a checksum
// field that matches the block (v7 headers). Fewer than 512 bytes: false.
bool IsTarHeader(std::span<const uint8_t> head);

// A file of an ORAS-style artifact that is neither a disk nor a tar (a
// README.md or a JSON file pushed beside disk.qcow2): listed by inspect, not
// served. Plain value type.
struct ArtifactFile {
  size_t layer = 0;       // index in the manifest's layers, bottom = 0
  std::string digest{};   // the layer blob's
  std::string title{};    // org.opencontainers.image.title, as given (never used as a path)
  std::string media_type{};
  uint64_t size = 0;      // the blob's, bytes
};

// Whether `layer`, not a disk by its descriptor nor by its bytes, is such a
// file: it has a title (as ORAS gives every pushed file), is not a directory
// ORAS packed (kOrasUnpackAnnotation "true"), and `head`, its first decoded
// bytes (512 or all there are), is no tar header and no empty archive's zero
// block. Told by what the bytes are, never by a tar parse that failed.
bool IsArtifactFile(const Descriptor& layer, std::span<const uint8_t> head);

// A Kubernetes resource quantity as bytes: "10Gi", "512Mi", "1G", "1500k",
// "1.5Gi", "4096"; binary (Ki, Mi, Gi, Ti, Pi, Ei) and decimal (k, M, G, T,
// P, E) suffixes. kInvalidArgument if it is not one, is negative, is not a
// whole number of bytes or exceeds 2^62.
[[nodiscard]] Result<uint64_t> ParseQuantity(std::string_view text);

// Checks the disks of one artifact together: two with one name are kCorrupt
// naming both layers.
[[nodiscard]] Status CheckDiskNames(const std::vector<BareDiskLayer>& disks);

// The disk `wanted` (a name or a title) among `disks`; "" = the only one.
// kNotFound / kInvalidArgument listing the names there are ("pick one with --disk").
[[nodiscard]] Result<const BareDiskLayer*> PickDisk(const std::vector<BareDiskLayer>& disks, std::string_view wanted);

}  // namespace ocifs
