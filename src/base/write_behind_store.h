// WriteBehindStore: a DecodedChunkStore whose Puts are written to the store
// below by one background thread, so a reader that just decompressed a chunk
// does not wait for a file to be created, and concurrent readers do not
// contend on the store's directory.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/decoded_store.h"

namespace ocifs {

// The writer runs under SCHED_IDLE: it uses only CPU time nothing else wants
// (until Flush or the destructor, which want the queue written now).
// Put copies the chunk into a queue of at most max_pending_bytes and returns;
// when the queue is full the chunk is not kept (the store is a cache: a later
// read decompresses it again) and dropped() counts it. Get and Contains see
// queued chunks. Write errors of the store below are logged at debug level.
// Thread safety: safe for concurrent use. The destructor writes what is
// queued, then joins the writer.
// Memory: at most max_pending_bytes of queued chunks (PutShared's buffers
// count, though the caller may hold them as well).
class WriteBehindStore final : public DecodedChunkStore {
 public:
  WriteBehindStore(std::shared_ptr<DecodedChunkStore> inner, uint64_t max_pending_bytes);
  ~WriteBehindStore() override;
  WriteBehindStore(const WriteBehindStore&) = delete;
  WriteBehindStore& operator=(const WriteBehindStore&) = delete;

  uint32_t chunk_size() const override { return inner_->chunk_size(); }
  [[nodiscard]] Result<bool> Get(uint64_t chunk_index, std::span<uint8_t> out) const override;
  [[nodiscard]] Status Put(uint64_t chunk_index, std::span<const uint8_t> data) const override;
  // Queues `data` itself, no copy: the queue then shares the buffer with the
  // caller (a memory cache, say), and costs memory only once the caller drops it.
  [[nodiscard]] Status PutShared(uint64_t chunk_index, SharedChunk data) const override;
  bool Contains(uint64_t chunk_index) const override;

  // Blocks until every chunk queued so far has been handed to the store below.
  void Flush() const;
  uint64_t dropped() const;

 private:
  using Chunk = SharedChunk;
  void RunWriter() const;

  const std::shared_ptr<DecodedChunkStore> inner_;
  const uint64_t max_pending_bytes_;
  mutable std::mutex mu_;  // guards the fields below
  mutable std::condition_variable cv_;
  mutable std::deque<uint64_t> order_;                     // indexes in Put order
  mutable std::unordered_map<uint64_t, Chunk> pending_;    // queued, not yet written
  mutable uint64_t pending_bytes_ = 0;
  mutable uint64_t dropped_ = 0;
  mutable bool writing_ = false;  // the writer holds a chunk taken from the queue
  mutable bool urgent_ = false;   // Flush was called: the writer leaves SCHED_IDLE
  mutable bool stop_ = false;
  mutable std::thread writer_;  // started by the first Put
};

}  // namespace ocifs
