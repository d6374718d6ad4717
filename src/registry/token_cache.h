// TokenCache: bearer tokens per scope, renewed before they expire.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace ocifs {

// Thread safety: safe for concurrent use (one internal mutex).
// Holds secrets: never log its contents.
class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;

  // The token for `scope` if it stays valid past now + a renewal margin
  // (10 s, or a quarter of its lifetime when that is shorter).
  std::optional<std::string> Get(const std::string& scope, Clock::time_point now = Clock::now()) const;
  // Stores a token valid for `lifetime` from `now`.
  void Put(const std::string& scope, std::string token, std::chrono::seconds lifetime,
           Clock::time_point now = Clock::now());
  // Forgets the token of `scope` (the registry refused it).
  void Invalidate(const std::string& scope);
  // Forgets every token (the credentials they were issued for changed).
  void Clear();

 private:
  struct Entry {
    std::string token;
    Clock::time_point renew_at;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

}  // namespace ocifs
