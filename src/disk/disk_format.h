// DetectDiskFormat: raw or qcow2, from the bytes of the disk file (never its name).
#pragma once

#include <string_view>

#include "ocifs/byte_source.h"

namespace ocifs {

enum class DiskFormat { kRaw, kQcow2 };

std::string_view DiskFormatName(DiskFormat format);  // "raw", "qcow2"

// qcow2: the magic "QFI\xfb" at offset 0. Other image formats that are not raw
// are refused with kUnsupported naming the format: VMDK ("KDMV", "COWD" or a
// descriptor file), VHDX ("vhdxfile"), VDI (signature 0xbeda107f at 0x40),
// QED ("QED\0"), VHD ("conectix" footer at the end, or its copy at 0),
// Parallels. Anything else (including an empty file) is raw.
// Reads at most 512 bytes at the start and 512 at the end.
// `check_trailer` also reads the last 512 bytes (a fixed VHD's footer); a
// caller whose file is still streaming in passes false and checks later.
[[nodiscard]] Result<DiskFormat> DetectDiskFormat(const ByteSource& file, bool check_trailer = true);

}  // namespace ocifs
