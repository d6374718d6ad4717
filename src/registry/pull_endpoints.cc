#include "registry/pull_endpoints.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "registry/registries_conf.h"

namespace ocifs {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{5000};
constexpr std::chrono::milliseconds kMaxBackoff{300000};

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace

Result<std::shared_ptr<PullEndpoints>> PullEndpoints::Open(const Reference& ref, const RegistryOptions& options) {
  OCIFS_ASSIGN_OR_RETURN(RegistriesConf conf, RegistriesConf::Load(options.registries_conf));
  OCIFS_ASSIGN_OR_RETURN(std::vector<PullSource> sources, conf.PullSources(ref));
  std::vector<Endpoint> endpoints;
  for (const PullSource& source : sources) {
    RegistryOptions o = options;
    if (source.insecure) o.tls_verify = false;
    if (source.mirror) o.max_retries = 0;  // a failing mirror falls through to the next
    OCIFS_ASSIGN_OR_RETURN(auto session, RegistrySession::Create(source.ref, o));
    if (source.mirror || source.ref.registry != ref.registry || source.ref.repository != ref.repository) {
      spdlog::info("registry: {} is pulled {} {}", ref.ToString(), source.mirror ? "through mirror" : "from",
                   source.ref.registry + "/" + source.ref.repository);
    }
    endpoints.push_back(Endpoint{std::move(session), source.mirror});
  }
  return std::make_shared<PullEndpoints>(std::move(endpoints));
}

bool PullEndpoints::Usable(Endpoint& e) {
  if (!e.mirror) return true;
  std::lock_guard lock(mu_);
  return std::chrono::steady_clock::now() >= e.skip_until;
}

void PullEndpoints::Failed(Endpoint& e, const Status& status, const std::string& what) {
  if (status.code() != Code::kUnavailable) {
    spdlog::info("registry: mirror {} has no {} ({}); trying the next", e.session->Name(), what, status.message());
    return;  // it answered: not a sick mirror
  }
  std::chrono::milliseconds backoff;
  {
    std::lock_guard lock(mu_);
    e.backoff = e.backoff.count() == 0 ? kFirstBackoff : std::min(kMaxBackoff, e.backoff * 2);
    e.skip_until = std::chrono::steady_clock::now() + e.backoff;
    backoff = e.backoff;
  }
  spdlog::warn("registry: mirror {} failed for {} ({}); falling back, and skipping it for {} s", e.session->Name(),
               what, status.message(), backoff.count() / 1000);
}

void PullEndpoints::Answered(Endpoint& e) {
  if (!e.mirror) return;
  std::lock_guard lock(mu_);
  e.backoff = std::chrono::milliseconds(0);
}

template <typename T, typename Ask>
T PullEndpoints::FirstThatAnswers(const std::string& what, Ask ask) {
  for (Endpoint& e : endpoints_) {
    if (!Usable(e)) continue;
    T result = ask(*e.session);
    if (!e.mirror) return result;
    Status status = StatusOf(result);
    if (status.ok()) {
      Answered(e);
      return result;
    }
    Failed(e, status, what);
  }
  return ask(primary());  // unreachable: the primary is always usable and last
}

std::chrono::steady_clock::time_point PullEndpoints::Deadline() const {
  return std::chrono::steady_clock::now() + std::chrono::seconds(primary().timeout_seconds());
}

Result<FetchedManifest> PullEndpoints::GetManifest(const std::string& tag_or_digest) {
  const auto deadline = Deadline();
  return FirstThatAnswers<Result<FetchedManifest>>(
      "manifest " + tag_or_digest, [&](RegistrySession& s) { return s.GetManifest(tag_or_digest, deadline); });
}

Status PullEndpoints::StreamStoppable(const std::string& what, const RangeSink::Consumer& consumer,
                                      const StreamOn& stream) {
  bool stopped = false;
  auto take = [&](uint64_t at, std::span<const uint8_t> bytes) {
    if (consumer(at, bytes)) return true;
    stopped = true;
    return false;
  };
  const auto deadline = Deadline();
  Status refused;
  Status status = FirstThatAnswers<Status>(what, [&](RegistrySession& s) {
    Status st = stream(s, take, deadline);
    if (st.code() == Code::kUnsupported) refused = st;
    return stopped || st.code() == Code::kUnsupported ? Status::Ok() : st;
  });
  if (stopped) return Cancelled(what + ".. stream stopped by its reader");
  if (!refused.ok()) return refused;
  return status;
}

Status PullEndpoints::StreamBlobRange(const Descriptor& blob, uint64_t offset, uint64_t length,
                                      const RangeSink::Consumer& consumer) {
  return StreamStoppable("blob " + blob.digest.substr(0, 19), consumer,
                         [&](RegistrySession& s, const RangeSink::Consumer& take, auto deadline) {
                           return s.StreamBlobRange(blob, offset, length, take, deadline);
                         });
}

Status PullEndpoints::StreamBlobRanges(const Descriptor& blob, std::span<const ByteRange> ranges,
                                       const MultiRangeSink::Consumer& consumer) {
  const std::vector<ByteRange> asked(ranges.begin(), ranges.end());
  return StreamStoppable("blob " + blob.digest.substr(0, 19), consumer,
                         [&](RegistrySession& s, const RangeSink::Consumer& take, auto deadline) {
                           return s.StreamBlobRanges(blob, asked, take, deadline);
                         });
}

Status PullEndpoints::ReadBlobRange(const Descriptor& blob, uint64_t offset, std::span<uint8_t> buf) {
  bool held = false;  // a read of the blob failed unavailable just now: a short ask
  {
    std::lock_guard lock(mu_);
    auto it = failed_.find(blob.digest);
    if (it != failed_.end()) {
      if (std::chrono::steady_clock::now() - it->second.at < kFailureHold) {
        held = true;
      } else {
        failed_.erase(it);
      }
    }
  }
  const auto deadline = held ? std::chrono::steady_clock::now() + kHeldBudget : Deadline();
  Status status = FirstThatAnswers<Status>(
      "blob " + blob.digest.substr(0, 19),
      [&](RegistrySession& s) { return s.ReadBlobRange(blob, offset, buf, deadline); });
  std::lock_guard lock(mu_);
  if (status.ok()) {
    failed_.erase(blob.digest);
  } else if (status.code() == Code::kUnavailable) {
    auto it = failed_.find(blob.digest);
    if (!held) {
      failed_[blob.digest] = Failure{std::chrono::steady_clock::now(), status};
    } else if (it != failed_.end()) {
      return it->second.status;  // the whole budget's failure says more than the short ask's
    }
  }
  return status;
}

}  // namespace ocifs
