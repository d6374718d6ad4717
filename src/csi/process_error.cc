#include "csi/process_error.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <utility>

namespace ocifs {
namespace {

std::string Lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// The last `oci-fs: ...` line of stderr, without the prefix; else the last
// non-empty line.
std::string ErrorLine(const std::string& err) {
  std::string last, tagged;
  size_t pos = 0;
  while (pos < err.size()) {
    size_t end = err.find('\n', pos);
    if (end == std::string::npos) end = err.size();
    std::string line = err.substr(pos, end - pos);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) last = line;
    if (line.rfind("oci-fs: ", 0) == 0) tagged = line.substr(8);
    pos = end + 1;
  }
  return tagged.empty() ? last : tagged;
}

}  // namespace

Code CodeFromMessage(std::string_view message) {
  const std::string m = Lower(message);
  // An exact Status::ToString() prefix wins.
  static constexpr std::array<std::pair<std::string_view, Code>, 6> kPrefixes{{
      {"not found:", Code::kNotFound},
      {"unauthenticated:", Code::kUnauthenticated},
      {"permission denied:", Code::kPermissionDenied},
      {"unavailable:", Code::kUnavailable},
      {"invalid argument:", Code::kInvalidArgument},
      {"unsupported:", Code::kUnsupported},
  }};
  for (const auto& [prefix, code] : kPrefixes) {
    if (m.rfind(prefix, 0) == 0) return code;
  }
  if (Contains(m, "unauthorized") || Contains(m, "unauthenticated") || Contains(m, " 401") ||
      Contains(m, "authentication required") || Contains(m, "credentials")) {
    return Code::kUnauthenticated;
  }
  if (Contains(m, "denied") || Contains(m, "forbidden") || Contains(m, " 403")) {
    return Code::kPermissionDenied;
  }
  if (Contains(m, "not found") || Contains(m, "unknown") || Contains(m, " 404") ||
      Contains(m, "no such")) {
    return Code::kNotFound;
  }
  if (Contains(m, "unavailable") || Contains(m, "refused") || Contains(m, "timed out") ||
      Contains(m, "timeout") || Contains(m, "resolve") || Contains(m, "unreachable") ||
      Contains(m, "connect")) {
    return Code::kUnavailable;
  }
  return Code::kInvalidArgument;
}

Status StatusFromProcessFailure(std::string_view what, const ProcessResult& result) {
  std::string w(what);
  if (result.timed_out) return Unavailable(w + ": timed out (process killed)");
  if (result.signal != 0) {
    return Internal(w + ": killed by signal " + std::to_string(result.signal));
  }
  std::string line = ErrorLine(result.err);
  if (line.empty()) {
    return Internal(w + ": exited with status " + std::to_string(result.exit_code) +
                    " and no message");
  }
  if (result.exit_code == 127) return Internal(w + ": " + line);
  return Status(CodeFromMessage(line), w + ": " + line);
}

}  // namespace ocifs
