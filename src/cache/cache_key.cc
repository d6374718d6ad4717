#include "cache/cache_key.h"

#include <cstdio>

#include <string>

namespace ocifs {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsPartChar(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-'; }

// 1..32 part characters, the first not '-'.
bool IsPart(std::string_view s) {
  if (s.empty() || s.size() > 32 || s.front() == '-') return false;
  for (char c : s) {
    if (!IsPartChar(c)) return false;
  }
  return true;
}

// The printable head of a bad key for an error message (keys are not secret,
// but may be long or binary).
std::string Shown(std::string_view key) {
  std::string s;
  for (char c : key.substr(0, 80)) s += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (key.size() > 80) s += "..";
  return "\"" + s + "\"";
}

}  // namespace

Status ValidateCacheKey(std::string_view key) {
  if (key.size() > kMaxKeyLength) {
    return InvalidArgument("cache key " + Shown(key) + " is longer than " +
                           std::to_string(kMaxKeyLength) + " bytes");
  }
  size_t hex_len = 0;
  if (key.starts_with("sha256:")) {
    hex_len = 64;
  } else if (key.starts_with("sha512:")) {
    hex_len = 128;
  } else {
    return InvalidArgument("cache key " + Shown(key) + " is not a sha256: or sha512: digest");
  }
  constexpr size_t kAlgoLen = 7;
  if (key.size() < kAlgoLen + hex_len) {
    return InvalidArgument("cache key " + Shown(key) + ": digest too short");
  }
  for (size_t i = kAlgoLen; i < kAlgoLen + hex_len; ++i) {
    if (!IsLowerHex(key[i])) {
      return InvalidArgument("cache key " + Shown(key) + ": digest is not lowercase hex at byte " +
                             std::to_string(i));
    }
  }
  std::string_view rest = key.substr(kAlgoLen + hex_len);
  while (!rest.empty()) {
    if (rest.front() != ':') {
      return InvalidArgument("cache key " + Shown(key) + ": expected ':' after the digest");
    }
    rest.remove_prefix(1);
    size_t end = rest.find(':');
    std::string_view part = rest.substr(0, end);
    if (!IsPart(part)) {
      return InvalidArgument("cache key " + Shown(key) +
                             ": suffix parts must be 1..32 of [a-z0-9-] not starting with '-'");
    }
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  return Status::Ok();
}

Status ValidateSideSuffix(std::string_view suffix) {
  if (!IsPart(suffix)) {
    return InvalidArgument("side file suffix " + Shown(suffix) +
                           " must be 1..32 of [a-z0-9-] not starting with '-'");
  }
  return Status::Ok();
}

uint64_t CacheKeyHash(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string DerivedCacheKey(std::string_view digest, std::string_view part) {
  std::string key(digest);
  key += ':';
  key += part;
  return key;
}

std::string DerivedCacheKey(std::string_view digest, std::string_view part, uint64_t offset) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "-%llx", static_cast<unsigned long long>(offset));
  return DerivedCacheKey(digest, part) + hex;
}

}  // namespace ocifs
