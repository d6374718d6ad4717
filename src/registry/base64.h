// Base64 (RFC 4648, with padding) for Basic auth and authfile entries.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ocifs {

std::string Base64Encode(std::string_view bytes);
// nullopt if `text` is not valid padded base64 (whitespace is not allowed).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace ocifs
