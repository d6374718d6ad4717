#include "registry/retry_policy.h"

#include <catch2/catch.hpp>

using namespace ocifs;
using namespace std::chrono_literals;

TEST_CASE("retry policy retries connection errors, 429 and 5xx, a bounded number of times") {
  RetryPolicy p;
  p.max_retries = 3;
  CHECK(p.ShouldRetry(AttemptFailure::kConnection, 0));
  CHECK(p.ShouldRetry(AttemptFailure::kStatus, 2));
  CHECK_FALSE(p.ShouldRetry(AttemptFailure::kStatus, 3));
  CHECK_FALSE(p.ShouldRetry(AttemptFailure::kPermanent, 0));
  CHECK_FALSE(p.ShouldRetry(AttemptFailure::kNone, 0));
  CHECK(ClassifyStatus(503) == AttemptFailure::kStatus);
  CHECK(ClassifyStatus(500) == AttemptFailure::kStatus);
  CHECK(ClassifyStatus(429) == AttemptFailure::kStatus);
  CHECK(ClassifyStatus(501) == AttemptFailure::kNone);
  CHECK(ClassifyStatus(404) == AttemptFailure::kNone);
  CHECK(ClassifyStatus(401) == AttemptFailure::kNone);
  CHECK(ClassifyStatus(206) == AttemptFailure::kNone);
}

TEST_CASE("retry delay grows exponentially with jitter and is capped") {
  RetryPolicy p;
  p.base_delay = 100ms;
  p.max_delay = 1000ms;
  CHECK(p.Delay(0, 0.0) == 50ms);
  CHECK(p.Delay(0, 1.0) == 100ms);
  CHECK(p.Delay(1, 0.0) == 100ms);
  CHECK(p.Delay(2, 0.5) == 300ms);
  CHECK(p.Delay(10, 1.0) == 1000ms);
  CHECK(p.Delay(1000, 1.0) == 1000ms);
  for (double j : {0.0, 0.3, 0.99}) {
    CHECK(p.Delay(3, j) >= 400ms);
    CHECK(p.Delay(3, j) <= 800ms);
  }
}

TEST_CASE("retry delay honours Retry-After seconds, capped") {
  RetryPolicy p;
  p.max_retry_after = 5s;
  CHECK(p.Delay(0, 0.0, 2s) == 2000ms);
  CHECK(p.Delay(0, 0.0, 3600s) == 5000ms);
  CHECK(ParseRetryAfter("7") == std::optional(7s));
  CHECK(ParseRetryAfter(" 0 ") == std::optional(0s));
  CHECK_FALSE(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"));
  CHECK_FALSE(ParseRetryAfter("-1"));
  CHECK_FALSE(ParseRetryAfter("99999999999999999"));
  CHECK_FALSE(ParseRetryAfter(""));
}
