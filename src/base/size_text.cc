#include "base/size_text.h"

#include <cmath>
#include <string>

namespace ocifs {

Result<uint64_t> ParseSize(std::string_view text) {
  if (text.empty()) return InvalidArgument("empty size");
  std::string s(text);
  size_t pos = 0;
  double value;
  try {
    value = std::stod(s, &pos);
  } catch (...) {
    return InvalidArgument("not a size: '" + s + "'");
  }
  std::string suffix = s.substr(pos);
  double mult = 1;
  if (suffix.empty() || suffix == "B") mult = 1;
  else if (suffix == "K" || suffix == "KiB" || suffix == "k") mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB") mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB") mult = 1ull << 30;
  else if (suffix == "T" || suffix == "TiB") mult = 1ull << 40;
  else return InvalidArgument("unknown size suffix in '" + s + "' (use K, M, G or T)");
  if (!(value >= 0) || value * mult > 1e18) return InvalidArgument("size out of range: '" + s + "'");
  return static_cast<uint64_t>(std::llround(value * mult));
}

}  // namespace ocifs
