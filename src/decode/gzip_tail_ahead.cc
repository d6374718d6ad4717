#include "decode/gzip_tail_ahead.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <utility>

namespace ocifs {

GzipTailAhead::GzipTailAhead(const ByteSource& compressed, std::shared_ptr<Scheduler> scheduler,
                             const PassProgress& progress)
    : compressed_(compressed), progress_(progress), task_(std::move(scheduler), "gzip tail of " + compressed.Describe()) {}

void GzipTailAhead::Start(uint64_t data_end) {
  const uint64_t blob = compressed_.size();
  if (progress_.complete() || blob == ByteSource::kUnknownSize || blob < kMinBlobBytes || asked_.exchange(true)) return;
  task_.Post(TaskClass::kReadahead, [this, data_end] {
    const auto start = std::chrono::steady_clock::now();
    Result<std::shared_ptr<const GzipTail>> tail = GzipTail::Decode(compressed_, data_end);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (tail.ok()) {
      spdlog::info("gzip pass over {}: decoded its last {:.1f} MiB ahead of the pass in {:.2f} s ({} bytes unknown)",
                   compressed_.Describe(), ((*tail)->total() - (*tail)->start()) / 1048576.0, seconds,
                   (*tail)->unknown_bytes());
      {
        std::lock_guard lock(tail_mu_);
        tail_ = std::move(*tail);
      }
      ready_.store(true, std::memory_order_release);
    } else {
      spdlog::info("gzip pass over {}: its end is not decoded ahead of the pass: {}", compressed_.Describe(),
                   tail.status().message());
    }
    ended_.store(true, std::memory_order_release);
    progress_.Wake();  // readers ahead of the pass look at the tail
  });
}

std::shared_ptr<const GzipTail> GzipTailAhead::Get() const {
  if (!ready_.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard lock(tail_mu_);
  return tail_;
}

bool GzipTailAhead::Copy(uint64_t offset, std::span<uint8_t> buf) const {
  const std::shared_ptr<const GzipTail> tail = Get();
  return tail && tail->Copy(offset, buf);
}

Result<std::optional<size_t>> GzipTailAhead::ServeAhead(uint64_t offset, std::span<uint8_t> buf) {
  if (!asked_.load(std::memory_order_acquire)) return std::optional<size_t>();
  if (progress_.complete()) {
    if (ready_.load(std::memory_order_acquire) && !dropped_.exchange(true)) {
      std::lock_guard lock(tail_mu_);
      tail_.reset();
    }
    return std::optional<size_t>();
  }
  if (Copy(offset, buf)) return std::optional<size_t>(buf.size());
  if (ended_.load(std::memory_order_acquire)) return std::optional<size_t>();
  const uint64_t end = offset + std::min<uint64_t>(buf.size(), UINT64_MAX - offset);
  OCIFS_ASSIGN_OR_RETURN(std::optional<PassProgress::Produced> produced,
                         progress_.WaitForOr(end, [this] { return ended_.load(std::memory_order_acquire); }));
  if (!produced && Copy(offset, buf)) return std::optional<size_t>(buf.size());
  return std::optional<size_t>();
}

}  // namespace ocifs
