// Parser of WWW-Authenticate challenges (RFC 7235), e.g.
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a,b:pull"
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ocifs {

// Plain value type. scheme and parameter names are lowercased; values kept as sent.
struct AuthChallenge {
  std::string scheme;  // "bearer", "basic"
  std::map<std::string, std::string> params;
  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

// All challenges in one header value, in order. Quoted values may hold commas,
// '=' and backslash escapes. Malformed trailing text is ignored (never throws).
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

}  // namespace ocifs
