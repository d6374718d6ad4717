// Sizes as people write them on command lines and in volume attributes.
#pragma once

#include <cstdint>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

// "10G", "512M", "4096", "1.5T" -> bytes (K, M, G, T are powers of 1024;
// KiB, MiB, GiB, TiB and a trailing B are accepted too). kInvalidArgument
// naming the text otherwise.
[[nodiscard]] Result<uint64_t> ParseSize(std::string_view text);

}  // namespace ocifs
