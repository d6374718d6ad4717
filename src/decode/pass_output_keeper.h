// PassOutputKeeper: keeps what a decoder's first sequential pass produces,
// in the fixed-size chunks of a DecodedChunkStore (the cache's
// "<digest>:decoded" chunks), so that a read behind the pass's frontier is a
// copy from local disk instead of a decompression from the nearest
// checkpoint. A boot reads a first-seen gzip layer all over while the pass
// streams it; those reads are then served at once.
//
// Only chunks this keeper stored are served: a chunk another process left in
// the store is not trusted here. An all-zero chunk is not stored, only noted
// (served as zeros). A chunk the store could not take, or dropped since (a
// bounded cache), is simply not served: the caller decompresses as before.
//
// With a SharedPassProgress, it also tells the other processes sharing the
// cache dir which chunks it kept (Publish, in order), so that the mounts
// following this pass serve their reads from them (PassOutputFollower).
//
// Thread safety: Begin, Feed, Finish and Withdraw belong to the pass's one thread; Copy is
// safe from any thread, concurrently with them (mu_ guards the chunk states).
// Ownership: shares the store.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/decoded_store.h"
#include "decode/shared_pass_progress.h"

namespace ocifs {

class PassOutputKeeper {
 public:
  // shared: null, or where the kept chunks are published (borrowed: must outlive this).
  explicit PassOutputKeeper(std::shared_ptr<DecodedChunkStore> store, SharedPassProgress* shared = nullptr);
  PassOutputKeeper(const PassOutputKeeper&) = delete;
  PassOutputKeeper& operator=(const PassOutputKeeper&) = delete;

  // The pass starts streaming (it holds the layer's pass lease): what was
  // published before is withdrawn; publishing starts again from chunk 0.
  void Begin();
  // The pass failed: what it published is withdrawn.
  void Withdraw();
  // The pass produced `data` at decompressed offset `out`; calls come in
  // order, each starting where the last ended. A complete chunk is stored.
  void Feed(uint64_t out, std::span<const uint8_t> data);
  // The pass completed at `size` bytes: the last, shorter chunk is stored.
  void Finish(uint64_t size);

  // Copies decompressed bytes [from, from + out.size()) into `out` if every
  // chunk they touch was stored (or noted as zeros) by this keeper and is
  // still in the store; false otherwise (out is then unspecified).
  bool Copy(uint64_t from, std::span<uint8_t> out) const;

  // Chunks stored so far (tests, logs).
  uint64_t stored_chunks() const;

 private:
  enum class State : uint8_t { kNone, kStored, kZero };

  // Stores buffered_ as chunk `index` (pass thread).
  void StoreChunk(uint64_t index);
  State StateOf(uint64_t index) const;
  // The stored length of chunk `index`: chunk_size_, or less for the last one.
  uint64_t LengthOf(uint64_t index) const;

  const std::shared_ptr<DecodedChunkStore> store_;
  SharedPassProgress* const shared_;  // null: nothing published
  const uint64_t chunk_size_;

  // Pass thread only: the chunk being filled.
  std::vector<uint8_t> buffered_;
  uint64_t buffered_index_ = 0;
  uint64_t next_out_ = 0;
  bool put_failed_ = false;  // logged once

  mutable std::mutex mu_;      // guards states_ and stored_
  std::vector<State> states_;  // by chunk index
  uint64_t stored_ = 0;
  uint64_t short_index_ = UINT64_MAX;  // the last chunk, if shorter than chunk_size_
  uint64_t short_length_ = 0;
};

}  // namespace ocifs
