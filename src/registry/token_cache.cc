#include "registry/token_cache.h"

#include <algorithm>

namespace ocifs {

std::optional<std::string> TokenCache::Get(const std::string& scope, Clock::time_point now) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(scope);
  if (it == entries_.end() || now >= it->second.renew_at) return std::nullopt;
  return it->second.token;
}

void TokenCache::Put(const std::string& scope, std::string token, std::chrono::seconds lifetime,
                     Clock::time_point now) {
  auto life = std::chrono::duration_cast<Clock::duration>(lifetime);
  auto margin = std::min<Clock::duration>(std::chrono::seconds(10), life / 4);
  std::lock_guard lock(mu_);
  entries_[scope] = Entry{std::move(token), now + life - margin};
}

void TokenCache::Invalidate(const std::string& scope) {
  std::lock_guard lock(mu_);
  entries_.erase(scope);
}

void TokenCache::Clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
}

}  // namespace ocifs
