#include "registry/platform.h"

#include <vector>

namespace ocifs {

std::string Platform::ToString() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Result<Platform> Platform::Parse(std::string_view text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  auto bad = [&](std::string why) {
    return InvalidArgument("invalid platform \"" + std::string(text) + "\": " + why +
                           " (expected os/arch[/variant], e.g. linux/amd64)");
  };
  if (parts.size() < 2 || parts.size() > 3) return bad("wrong number of components");
  for (const auto& p : parts) {
    if (p.empty()) return bad("empty component");
    for (char c : p) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
        return bad("unexpected character '" + std::string(1, c) + "'");
      }
    }
  }
  Platform p{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
  return p;
}

Platform Platform::Host() {
#if defined(__x86_64__)
  return {"linux", "amd64", ""};
#elif defined(__aarch64__)
  return {"linux", "arm64", ""};
#elif defined(__arm__)
  return {"linux", "arm", "v7"};
#elif defined(__i386__)
  return {"linux", "386", ""};
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return {"linux", "ppc64le", ""};
#elif defined(__s390x__)
  return {"linux", "s390x", ""};
#elif defined(__riscv) && __riscv_xlen == 64
  return {"linux", "riscv64", ""};
#else
  return {"linux", "unknown", ""};
#endif
}

bool Platform::Matches(const Platform& candidate) const {
  if (os != candidate.os || architecture != candidate.architecture) return false;
  if (variant.empty()) return true;
  auto norm = [this](const std::string& v) { return architecture == "arm64" && v == "v8" ? "" : v; };
  return norm(variant) == norm(candidate.variant);
}

}  // namespace ocifs
