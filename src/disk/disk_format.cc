#include "disk/disk_format.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace ocifs {
namespace {

bool StartsWith(std::span<const uint8_t> bytes, std::string_view magic, size_t at = 0) {
  return bytes.size() >= at + magic.size() && std::memcmp(bytes.data() + at, magic.data(), magic.size()) == 0;
}

Status Refuse(const ByteSource& file, std::string_view format) {
  return Unsupported(file.Describe() + " is a " + std::string(format) +
                     " image; oci-fs serves raw and qcow2 disks only (convert it with qemu-img)");
}

}  // namespace

std::string_view DiskFormatName(DiskFormat format) {
  return format == DiskFormat::kQcow2 ? "qcow2" : "raw";
}

Result<DiskFormat> DetectDiskFormat(const ByteSource& file, bool check_trailer) {
  std::array<uint8_t, 512> head{};
  OCIFS_ASSIGN_OR_RETURN(size_t n, file.ReadAt(0, head));
  std::span<const uint8_t> bytes(head.data(), n);

  using namespace std::string_view_literals;
  if (StartsWith(bytes, "QFI\xfb"sv)) return DiskFormat::kQcow2;
  if (StartsWith(bytes, "KDMV"sv) || StartsWith(bytes, "COWD"sv) || StartsWith(bytes, "# Disk DescriptorFile"sv)) {
    return Refuse(file, "VMDK");
  }
  if (StartsWith(bytes, "vhdxfile"sv)) return Refuse(file, "VHDX");
  if (StartsWith(bytes, "QED\0"sv)) return Refuse(file, "QED");
  if (StartsWith(bytes, "\x7f\x10\xda\xbe"sv, 0x40)) return Refuse(file, "VDI");
  if (StartsWith(bytes, "WithoutFreeSpace"sv) || StartsWith(bytes, "WithouFreSpacExt"sv)) {
    return Refuse(file, "Parallels");
  }
  if (StartsWith(bytes, "conectix"sv)) return Refuse(file, "VHD");
  uint64_t size = file.size();
  if (check_trailer && size != ByteSource::kUnknownSize && size >= 512) {
    // A fixed VHD is raw data followed by a 512-byte footer (511 in old versions).
    std::array<uint8_t, 512> tail{};
    OCIFS_ASSIGN_OR_RETURN(size_t t, file.ReadAt(size - 512, tail));
    std::span<const uint8_t> end(tail.data(), t);
    if (StartsWith(end, "conectix"sv) || StartsWith(end, "conectix"sv, 1)) return Refuse(file, "VHD");
  }
  return DiskFormat::kRaw;
}

}  // namespace ocifs
