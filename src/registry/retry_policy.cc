#include "registry/retry_policy.h"

#include <algorithm>
#include <charconv>

namespace ocifs {

AttemptFailure ClassifyStatus(long status) {
  if (status == 429) return AttemptFailure::kStatus;
  if (status >= 500 && status <= 599 && status != 501 && status != 505) return AttemptFailure::kStatus;
  return AttemptFailure::kNone;
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
  if (v.empty() || v.size() > 9) return std::nullopt;
  long n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 0) return std::nullopt;
  return std::chrono::seconds(n);
}

bool RetryPolicy::ShouldRetry(AttemptFailure failure, int retry) const {
  if (retry >= max_retries) return false;
  return failure == AttemptFailure::kConnection || failure == AttemptFailure::kStatus;
}

std::chrono::milliseconds RetryPolicy::Delay(int retry, double jitter01,
                                             std::optional<std::chrono::seconds> retry_after) const {
  jitter01 = std::clamp(jitter01, 0.0, 1.0);
  int shift = std::clamp(retry, 0, 30);
  long long full = std::min<long long>(max_delay.count(), base_delay.count() << std::min(shift, 20));
  auto d = std::chrono::milliseconds(full / 2 + static_cast<long long>(static_cast<double>(full / 2) * jitter01));
  if (retry_after) {
    auto ra = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(*retry_after, max_retry_after));
    d = std::max(d, ra);
  }
  return d;
}

}  // namespace ocifs
