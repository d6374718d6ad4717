#include "decode/index_fallback_source.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace ocifs {

IndexFallbackSource::IndexFallbackSource(ByteSourcePtr primary, Factory fallback, std::string index_name)
    : primary_(std::move(primary)), factory_(std::move(fallback)), index_name_(std::move(index_name)) {}

bool IndexFallbackSource::ProvesIndexWrong(const Status& status) {
  return status.code() == Code::kDataLoss || status.code() == Code::kCorrupt;
}

ByteSourcePtr IndexFallbackSource::Current() const {
  if (!switched_.load(std::memory_order_acquire)) return primary_;
  std::lock_guard lock(mu_);
  return fallback_ ? fallback_ : primary_;
}

Result<ByteSourcePtr> IndexFallbackSource::Fallback(const Status& why) const {
  std::lock_guard lock(mu_);
  if (!switched_.load(std::memory_order_relaxed)) {
    spdlog::error("the {} of {} proved wrong; reading the layer without it (its own pass rebuilds it): {}",
                  index_name_, primary_->Describe(), why.ToString());
    Result<ByteSourcePtr> made = factory_();
    if (made.ok() && *made) {
      fallback_ = std::move(made).value();
    } else {
      fallback_error_ = made.ok() ? Internal("no fallback source for " + primary_->Describe()) : made.status();
      spdlog::error("cannot read {} with a new first pass: {}", primary_->Describe(), fallback_error_.ToString());
    }
    switched_.store(true, std::memory_order_release);
  }
  if (!fallback_) return fallback_error_;
  return fallback_;
}

Result<size_t> IndexFallbackSource::ReadAt(uint64_t offset, std::span<uint8_t> buf) const {
  if (!switched_.load(std::memory_order_acquire)) {
    Result<size_t> n = primary_->ReadAt(offset, buf);
    if (n.ok() || !ProvesIndexWrong(n.status())) return n;
    OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr fallback, Fallback(n.status()));
    return fallback->ReadAt(offset, buf);  // the failing read, retried
  }
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr fallback, Fallback(Status::Ok()));
  return fallback->ReadAt(offset, buf);
}

}  // namespace ocifs
