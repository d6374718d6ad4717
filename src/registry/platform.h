// Platform: the os/architecture/variant of an image, as in an OCI index.
#pragma once

#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

// Plain value type.
struct Platform {
  std::string os, architecture, variant;

  std::string ToString() const;  // "linux/arm64/v8", "linux/amd64"
  // "os/arch[/variant]", lowercase letters, digits, '_' and '.'; kInvalidArgument otherwise.
  static Result<Platform> Parse(std::string_view text);
  // The platform this binary runs on: linux/amd64 on x86_64, linux/arm64 on aarch64, ...
  static Platform Host();

  // True if an index entry for `candidate` serves a request for this platform:
  // os and architecture equal; an empty variant here accepts any variant;
  // arm64's "v8" equals no variant.
  bool Matches(const Platform& candidate) const;

  bool operator==(const Platform&) const = default;
};

}  // namespace ocifs
