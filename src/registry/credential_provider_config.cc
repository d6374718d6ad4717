#include "registry/credential_provider_config.h"

#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>

namespace ocifs {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

// "host[:port]/path" -> {host, port, path} as Go's url.Parse("https://" + s)
// and net.SplitHostPort split it (the kubelet's ParseSchemelessURL, SplitURL).
struct SchemelessUrl {
  std::string_view host, port, path;
};

SchemelessUrl SplitUrl(std::string_view s) {
  SchemelessUrl u;
  size_t slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) u.path = s.substr(slash);
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(':') == colon) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;  // no port (or an unbracketed IPv6 address: no port either)
  }
  return u;
}

std::vector<std::string> SplitDots(std::string_view host) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = host.find('.', start);
    parts.emplace_back(host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

Status Bad(const std::string& where, const std::string& what) {
  return InvalidArgument("credential provider config " + where + ": " + what);
}

Result<std::string> ScalarField(const YAML::Node& node, const char* key, const std::string& where,
                                const std::string& owner, bool required) {
  YAML::Node v = node[key];
  if (!v || v.IsNull()) {
    if (required) return Bad(where, owner + " has no \"" + key + "\"");
    return std::string();
  }
  if (!v.IsScalar()) return Bad(where, owner + ": \"" + key + "\" is not a string");
  return v.as<std::string>();
}

Result<std::vector<std::string>> StringList(const YAML::Node& node, const char* key, const std::string& where,
                                            const std::string& owner) {
  std::vector<std::string> out;
  YAML::Node v = node[key];
  if (!v || v.IsNull()) return out;
  if (!v.IsSequence()) return Bad(where, owner + ": \"" + key + "\" is not a list");
  for (const auto& item : v) {
    if (!item.IsScalar()) return Bad(where, owner + ": an entry of \"" + key + "\" is not a string");
    out.push_back(item.as<std::string>());
  }
  return out;
}

Result<CredentialProviderSpec> ParseProvider(const YAML::Node& node, size_t index, const std::string& where) {
  std::string owner = "providers[" + std::to_string(index) + "]";
  if (!node.IsMap()) return Bad(where, owner + " is not an object");
  static const std::set<std::string> kKnown = {"name", "matchImages", "defaultCacheDuration", "apiVersion",
                                               "args", "env"};
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (key == "tokenAttributes") {
      return Bad(where, owner + ": \"tokenAttributes\" (service account tokens) is not supported by oci-fs");
    }
    if (!kKnown.count(key)) return Bad(where, owner + ": unknown field \"" + key + "\"");
  }
  CredentialProviderSpec spec;
  OCIFS_ASSIGN_OR_RETURN(spec.name, ScalarField(node, "name", where, owner, true));
  if (spec.name.empty() || spec.name == "." || spec.name == ".." ||
      spec.name.find_first_of("/ \t\n") != std::string::npos) {
    return Bad(where, owner + ": name \"" + spec.name + "\" is not a plain file name");
  }
  owner = "provider \"" + spec.name + "\"";
  OCIFS_ASSIGN_OR_RETURN(spec.match_images, StringList(node, "matchImages", where, owner));
  if (spec.match_images.empty()) return Bad(where, owner + " has no \"matchImages\"");
  for (const auto& pattern : spec.match_images) {
    if (Status s = ValidateImagePattern(pattern); !s.ok()) return Bad(where, owner + ": " + s.message());
  }
  OCIFS_ASSIGN_OR_RETURN(std::string duration, ScalarField(node, "defaultCacheDuration", where, owner, true));
  auto parsed = ParseGoDuration(duration);
  if (!parsed.ok()) return Bad(where, owner + ": defaultCacheDuration: " + parsed.status().message());
  spec.default_cache_duration = *parsed;
  OCIFS_ASSIGN_OR_RETURN(spec.api_version, ScalarField(node, "apiVersion", where, owner, true));
  if (spec.api_version != "credentialprovider.kubelet.k8s.io/v1" &&
      spec.api_version != "credentialprovider.kubelet.k8s.io/v1beta1" &&
      spec.api_version != "credentialprovider.kubelet.k8s.io/v1alpha1") {
    return Bad(where, owner + ": apiVersion \"" + spec.api_version +
                          "\" is not credentialprovider.kubelet.k8s.io/v1 (or v1beta1, v1alpha1)");
  }
  OCIFS_ASSIGN_OR_RETURN(spec.args, StringList(node, "args", where, owner));
  YAML::Node env = node["env"];
  if (env && !env.IsNull()) {
    if (!env.IsSequence()) return Bad(where, owner + ": \"env\" is not a list");
    for (const auto& e : env) {
      if (!e.IsMap()) return Bad(where, owner + ": an \"env\" entry is not an object");
      OCIFS_ASSIGN_OR_RETURN(std::string name, ScalarField(e, "name", where, owner + " env entry", true));
      OCIFS_ASSIGN_OR_RETURN(std::string value, ScalarField(e, "value", where, owner + " env " + name, false));
      if (name.empty() || name.find('=') != std::string::npos) {
        return Bad(where, owner + ": env name \"" + name + "\" is not a variable name");
      }
      spec.env.emplace_back(std::move(name), std::move(value));
    }
  }
  return spec;
}

}  // namespace

Result<std::chrono::milliseconds> ParseGoDuration(std::string_view text) {
  const std::string quoted = std::string("\"").append(text.substr(0, 60)).append("\"");
  auto bad = [&] { return InvalidArgument(quoted + " is not a duration such as 12h, 30m or 1h30m"); };
  if (text == "0") return std::chrono::milliseconds(0);
  if (text.empty()) return bad();
  if (text.front() == '-') return InvalidArgument(quoted + " is negative");
  if (text.front() == '+') text.remove_prefix(1);
  double total_ms = 0;
  while (!text.empty()) {
    size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (i == 0) return bad();
    std::string number(text.substr(0, i));
    if (number == "." || std::count(number.begin(), number.end(), '.') > 1) return bad();
    double value = std::strtod(number.c_str(), nullptr);
    text.remove_prefix(i);
    size_t u = 0;
    while (u < text.size() && !((text[u] >= '0' && text[u] <= '9') || text[u] == '.')) ++u;
    std::string_view unit = text.substr(0, u);
    text.remove_prefix(u);
    double scale;
    if (unit == "ns") {
      scale = 1e-6;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      scale = 1e-3;
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1e3;
    } else if (unit == "m") {
      scale = 60e3;
    } else if (unit == "h") {
      scale = 3600e3;
    } else {
      return bad();
    }
    total_ms += value * scale;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e15) return bad();
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

Status ValidateImagePattern(std::string_view pattern) {
  const std::string quoted = "matchImages pattern \"" + std::string(pattern.substr(0, 200)) + "\"";
  if (pattern.empty()) return InvalidArgument("a matchImages pattern is empty");
  if (pattern.find_first_of(" \t\r\n") != std::string_view::npos) return InvalidArgument(quoted + " holds white space");
  if (pattern.find("://") != std::string_view::npos) {
    return InvalidArgument(quoted + " has a scheme: write host[:port][/path] (the kubelet never matches it)");
  }
  int depth = 0;
  for (char c : pattern) {
    if (c == '[') ++depth;
    if (c == ']' && depth > 0) --depth;
  }
  if (depth != 0) return InvalidArgument(quoted + " has a '[' without its ']'");
  return Status::Ok();
}

bool ImageMatches(std::string_view pattern, std::string_view image) {
  SchemelessUrl glob = SplitUrl(pattern), target = SplitUrl(image);
  if (glob.port != target.port) return false;
  std::vector<std::string> glob_parts = SplitDots(glob.host), target_parts = SplitDots(target.host);
  if (glob_parts.size() != target_parts.size()) return false;
  if (!target.path.starts_with(glob.path)) return false;
  for (size_t i = 0; i < glob_parts.size(); ++i) {
    if (::fnmatch(glob_parts[i].c_str(), target_parts[i].c_str(), 0) != 0) return false;
  }
  return true;
}

Result<CredentialProviderConfig> ParseCredentialProviderConfig(std::string_view text, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Bad(where, "not YAML or JSON (line " + std::to_string(e.mark.line + 1) + ")");
  }
  if (!root.IsMap()) return Bad(where, "is not an object");
  try {
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (key != "apiVersion" && key != "kind" && key != "providers") {
        return Bad(where, "unknown field \"" + key + "\"");
      }
    }
    OCIFS_ASSIGN_OR_RETURN(std::string kind, ScalarField(root, "kind", where, "the file", true));
    if (kind != "CredentialProviderConfig") return Bad(where, "kind is \"" + kind + "\", not CredentialProviderConfig");
    OCIFS_ASSIGN_OR_RETURN(std::string version, ScalarField(root, "apiVersion", where, "the file", true));
    if (version != "kubelet.config.k8s.io/v1" && version != "kubelet.config.k8s.io/v1beta1" &&
        version != "kubelet.config.k8s.io/v1alpha1") {
      return Bad(where, "apiVersion \"" + version + "\" is not kubelet.config.k8s.io/v1 (or v1beta1, v1alpha1)");
    }
    YAML::Node providers = root["providers"];
    if (!providers || !providers.IsSequence() || providers.size() == 0) {
      return Bad(where, "\"providers\" is not a non-empty list");
    }
    CredentialProviderConfig config;
    std::set<std::string> names;
    for (size_t i = 0; i < providers.size(); ++i) {
      OCIFS_ASSIGN_OR_RETURN(CredentialProviderSpec spec, ParseProvider(providers[i], i, where));
      if (!names.insert(spec.name).second) return Bad(where, "provider name \"" + spec.name + "\" is used twice");
      config.providers.push_back(std::move(spec));
    }
    return config;
  } catch (const YAML::Exception& e) {
    return Bad(where, "unexpected structure (line " + std::to_string(e.mark.line + 1) + ")");
  }
}

Result<CredentialProviderConfig> LoadCredentialProviderConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("open credential provider config " + path, errno);
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) return Bad(path, "is larger than 1 MiB");
  return ParseCredentialProviderConfig(text, path);
}

}  // namespace ocifs
