// RetryPolicy: which failed HTTP attempts to retry, and how long to wait.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace ocifs {

// What one attempt ended with, as the policy sees it.
enum class AttemptFailure {
  kNone,        // a response that is final (2xx, 3xx, 4xx other than 429)
  kConnection,  // connect failure, reset, timeout, truncated body: transient
  kPermanent,   // cannot resolve host, TLS verification, bad URL: retrying will not help
  kStatus,      // 429 or a 5xx other than 501/505
};

// Classifies an HTTP status (0 = no response).
AttemptFailure ClassifyStatus(long status);

// "Retry-After: <seconds>" -> seconds; HTTP dates and junk -> nullopt.
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value);

// Plain value type; thread-compatible (const methods only).
// Units: durations as typed; attempts count retries from 0.
struct RetryPolicy {
  int max_retries = 4;
  std::chrono::milliseconds base_delay{200};
  std::chrono::milliseconds max_delay{10000};
  std::chrono::seconds max_retry_after{30};

  // Whether retry number `retry` (0-based) may follow this failure.
  bool ShouldRetry(AttemptFailure failure, int retry) const;
  // Delay before retry number `retry`: base * 2^retry capped at max_delay, with
  // "equal jitter" (half fixed, half random by jitter01 in [0,1)); at least the
  // server's Retry-After (capped at max_retry_after).
  std::chrono::milliseconds Delay(int retry, double jitter01,
                                  std::optional<std::chrono::seconds> retry_after = std::nullopt) const;
};

}  // namespace ocifs
