// PullEndpoints: the registries one pull reads from — the mirrors
// registries.conf names for the reference, in order, then the primary
// location — each a RegistrySession. A manifest or a blob range is asked of
// each in turn until one answers with the bytes; a mirror that fails
// (unreachable, stalled, 5xx) is skipped for a backoff (5 s, doubling up to
// 5 min, reset when it answers) and then tried again.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "ocifs/status.h"
#include "registry/descriptor.h"
#include "registry/image_resolver.h"
#include "registry/reference.h"
#include "registry/registry_options.h"
#include "registry/registry_session.h"

namespace ocifs {

// Thread safety: safe for concurrent use. Shared (shared_ptr) by the
// RegistryClient and every BlobSource opened from it. mu_ is a leaf lock.
class PullEndpoints {
 public:
  // Loads registries.conf (RegistryOptions::registries_conf) and opens one
  // session per endpoint; contacts nothing. A blocked reference is
  // kPermissionDenied saying so; a malformed registries.conf kInvalidArgument.
  // Mirrors are asked once per request (no retries): a failure falls through.
  [[nodiscard]] static Result<std::shared_ptr<PullEndpoints>> Open(const Reference& ref,
                                                                   const RegistryOptions& options);

  // One --registry-timeout (the primary's) bounds each of these whole: the
  // mirrors asked, the primary, their token requests and retries share one
  // deadline, so a failing mirror does not add its wait to the primary's.
  // As RegistrySession::GetManifest, from the first endpoint that has it.
  [[nodiscard]] Result<FetchedManifest> GetManifest(const std::string& tag_or_digest);
  // As RegistrySession::ReadBlobRange: exactly the range, from the first
  // endpoint that serves all of it (a failed attempt starts over). A range
  // of a blob whose last read failed unavailable (after its retries) less
  // than kFailureHold ago is asked with a budget of kHeldBudget only (an
  // attempt whose stall timeout is cut to 1 s), and fails with that earlier
  // error if it fails unavailable again: the kernel asks a failed FUSE read
  // again at once (its readahead, then the page), and a reader that joined
  // the failed fetch asks again too (cache/chunk_cache.h); neither must wait
  // a second budget, but a registry that is back by then answers, and the
  // read gets its bytes. A short ask that fails does not extend the hold.
  [[nodiscard]] Status ReadBlobRange(const Descriptor& blob, uint64_t offset, std::span<uint8_t> buf);
  // As RegistrySession::StreamBlobRange, from the first endpoint that
  // serves it: a mirror that fails is marked as for a read and the next one
  // streams the range again from its start (the consumer sees `at` go back).
  // kCancelled if the consumer stopped it (no endpoint is marked failed).
  [[nodiscard]] Status StreamBlobRange(const Descriptor& blob, uint64_t offset, uint64_t length,
                                       const RangeSink::Consumer& consumer);

  // As RegistrySession::StreamBlobRanges, from the first usable endpoint
  // (a mirror that fails is marked as for a read and the next one is asked;
  // one that does not do multi-range is no failure: kUnsupported, and the
  // caller reads the ranges one by one, each through the endpoints as usual).
  [[nodiscard]] Status StreamBlobRanges(const Descriptor& blob, std::span<const ByteRange> ranges,
                                        const MultiRangeSink::Consumer& consumer);

  // The primary location's session (referrers, messages).
  RegistrySession& primary() const { return *endpoints_.back().session; }
  // "registry/repo" of the primary, for messages.
  std::string Name() const { return primary().Name(); }

  struct Endpoint {
    std::shared_ptr<RegistrySession> session;
    bool mirror = false;
    std::chrono::steady_clock::time_point skip_until{};  // guarded by mu_
    std::chrono::milliseconds backoff{0};               // guarded by mu_
  };
  explicit PullEndpoints(std::vector<Endpoint> endpoints) : endpoints_(std::move(endpoints)) {}

 private:
  // Runs `ask` on each usable endpoint in order until one succeeds; returns
  // the primary's result (or its error) when every mirror failed.
  template <typename T, typename Ask>
  T FirstThatAnswers(const std::string& what, Ask ask);
  // A stream whose consumer may stop it, from the first usable endpoint:
  // `stream` runs on each endpoint with `consumer` wrapped. The stop is no
  // failure of the endpoint (kCancelled, naming `what`), nor a refused
  // request (kUnsupported, returned as it is, no further endpoint asked).
  using StreamOn = std::function<Status(RegistrySession&, const RangeSink::Consumer& take,
                                        std::chrono::steady_clock::time_point deadline)>;
  Status StreamStoppable(const std::string& what, const RangeSink::Consumer& consumer, const StreamOn& stream);
  bool Usable(Endpoint& e);
  // now + the primary's --registry-timeout.
  std::chrono::steady_clock::time_point Deadline() const;
  void Failed(Endpoint& e, const Status& status, const std::string& what);
  void Answered(Endpoint& e);

  // Longer than a held ask itself: the kernel asks a failed page again after
  // its readahead's ask failed (each up to kHeldBudget), and that second ask
  // must still be held, or it waits a whole budget (measured: a read failed
  // after two --registry-timeouts, 20 s for 10).
  static constexpr std::chrono::milliseconds kFailureHold{3000};
  static constexpr std::chrono::milliseconds kHeldBudget{1000};

  std::mutex mu_;
  std::vector<Endpoint> endpoints_;  // mirrors in order, then the primary (never empty)
  struct Failure {
    std::chrono::steady_clock::time_point at;
    Status status;
  };
  std::map<std::string, Failure> failed_;  // blob digest -> its last unavailable failure; guarded by mu_
};

}  // namespace ocifs
