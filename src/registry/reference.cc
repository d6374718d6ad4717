#include "registry/reference.h"

#include <array>

#include "registry/digest.h"

namespace ocifs {
namespace {

constexpr size_t kMaxNameLength = 255;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool ValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" || sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// host[:port] or [v6]:port
bool ValidRegistry(std::string_view r) {
  if (r.empty()) return false;
  std::string_view host = r, port;
  if (r.front() == '[') {
    size_t close = r.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : r.substr(1, close - 1)) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
            c == '.')) {
        return false;
      }
    }
    std::string_view rest = r.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    port = rest.empty() ? rest : rest.substr(1);
    if (!rest.empty() && port.empty()) return false;
    host = {};
  } else {
    size_t colon = r.find(':');
    if (colon != std::string_view::npos) {
      host = r.substr(0, colon);
      port = r.substr(colon + 1);
      if (port.empty()) return false;
    }
  }
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  if (port.size() > 5) return false;
  for (char c : host) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return false;
    }
  }
  return r.front() == '[' || (!host.empty() && host.front() != '-' && host.front() != '.');
}

Status Bad(std::string_view text, std::string why) {
  return InvalidArgument("invalid image reference \"" + std::string(text.substr(0, 300)) + "\": " + why);
}

Result<Reference> ParseOciLayout(std::string_view full, std::string_view rest) {
  Reference ref;
  ref.transport = Reference::Transport::kOciLayout;
  size_t at = rest.find("@sha256:");
  if (at == std::string_view::npos) at = rest.rfind('@');
  if (at != std::string_view::npos && rest.substr(at + 1).find('/') == std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    Status st = ValidateDigest(ref.digest);
    if (!st.ok()) return Status(st.code(), "invalid image reference \"" + std::string(full) + "\": " + st.message());
    rest = rest.substr(0, at);
  }
  size_t colon = rest.find(':');  // as containers/image: the path cannot hold ':'
  if (colon != std::string_view::npos) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (ref.tag.empty() || ref.tag.find('/') != std::string::npos) return Bad(full, "invalid tag after the path");
  }
  if (rest.empty()) return Bad(full, "oci: needs a directory path");
  ref.layout_path = std::string(rest);
  return ref;
}

}  // namespace

bool IsValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (!word(t[0])) return false;
  for (char c : t) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

Result<Reference> Reference::Parse(std::string_view text) {
  std::string_view rest = text;
  if (rest.empty()) return Bad(text, "empty");
  if (rest.starts_with("docker://")) {
    rest.remove_prefix(9);
  } else if (rest.starts_with("oci:")) {
    return ParseOciLayout(text, rest.substr(4));
  } else {
    static constexpr std::array<std::string_view, 8> kOther = {
        "dir:", "docker-archive:", "docker-daemon:", "oci-archive:", "containers-storage:", "ostree:", "sif:",
        "tarball:"};
    for (auto t : kOther) {
      if (rest.starts_with(t)) {
        return Unsupported("image reference \"" + std::string(text) + "\": transport " +
                           std::string(t.substr(0, t.size() - 1)) + " is not supported (use docker:// or oci:)");
      }
    }
  }
  if (rest.empty()) return Bad(text, "empty");
  Reference ref;
  size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    Status st = ValidateDigest(ref.digest);
    if (!st.ok()) return Status(st.code(), "invalid image reference \"" + std::string(text) + "\": " + st.message());
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!IsValidTag(ref.tag)) {
      return Bad(text, "invalid tag \"" + ref.tag + "\" (letters, digits, '_', '.', '-'; at most 128)");
    }
  }
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  if (slash != std::string_view::npos &&
      (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
       first == "localhost" || first.starts_with("["))) {
    ref.registry = std::string(first);
    rest = rest.substr(slash + 1);
    if (!ValidRegistry(ref.registry)) return Bad(text, "invalid registry host \"" + ref.registry + "\"");
    if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") ref.registry = "docker.io";
  } else {
    ref.registry = "docker.io";
  }
  if (rest.empty()) return Bad(text, "missing repository name");
  if (ref.registry == "docker.io" && rest.find('/') == std::string_view::npos) {
    ref.repository = "library/" + std::string(rest);
  } else {
    ref.repository = std::string(rest);
  }
  if (ref.registry.size() + 1 + ref.repository.size() > kMaxNameLength) {
    return Bad(text, "name longer than 255 characters");
  }
  size_t start = 0;
  while (true) {
    size_t end = ref.repository.find('/', start);
    std::string_view comp = std::string_view(ref.repository).substr(start, end == std::string::npos ? end : end - start);
    if (!ValidComponent(comp)) {
      bool upper = false;
      for (char c : comp) upper = upper || (c >= 'A' && c <= 'Z');
      return Bad(text, upper ? "repository name must be lowercase"
                             : "invalid repository component \"" + std::string(comp) +
                                   "\" (lowercase letters and digits, separated by '.', '_', '__' or '-')");
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string Reference::ToString() const {
  std::string s;
  if (transport == Transport::kOciLayout) {
    s = "oci:" + layout_path;
    if (!tag.empty()) s += ":" + tag;
  } else {
    s = registry + "/" + repository;
    if (!tag.empty()) s += ":" + tag;
  }
  if (!digest.empty()) s += "@" + digest;
  return s;
}

std::string Reference::ApiHost() const { return registry == "docker.io" ? "registry-1.docker.io" : registry; }

}  // namespace ocifs
