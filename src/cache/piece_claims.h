// PieceClaims: a claim per piece of a kept-piece file, shared by every process
// that keeps the same disk, so that ONE of them makes a missing piece (inflates
// a qcow2 cluster) while the others wait for it and then read what it kept
// (docs/cache-format.md, "Kept pieces", "Claims").
//
// The words: kKeptClaimWords 32-bit words in the kept file's header block
// (kept_piece_format.h), mapped MAP_SHARED; piece i uses word i % 512 (two
// pieces sharing a word only wait for each other a little). A word is 0 (free)
// or the pid of the process whose thread makes a piece of that word.
//
// Protocol (Acquire): take a free word (compare-and-swap 0 -> pid) and make the
// piece, or, while another holds it, wait on the word (a shared futex) until
// it is released or the piece is there (`ready`). Releasing (the Claim's
// destructor, after the piece was kept or failed) frees the word and wakes the
// waiters; they look for the piece and claim the word if it is still missing.
// Nothing blocks for long: a word held by a process that no longer exists is
// taken over at once, and a waiter gives up after `timeout` and makes the
// piece itself (a claimer that hangs costs a duplicate, never a hang). A word
// left by a crash is a claim of a dead pid: taken over the same way. Claims
// only avoid duplicate work; the pieces' CRC checks keep the bytes right.
//
// Thread safety: safe for concurrent use by any thread and process. The
// mapping must outlive every Claim it hands out.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "ocifs/status.h"

namespace ocifs {

class PieceClaims {
 public:
  // Maps the claim words of the kept file open as `fd` (read-write).
  [[nodiscard]] static Result<std::unique_ptr<PieceClaims>> Map(int fd);
  ~PieceClaims();
  PieceClaims(const PieceClaims&) = delete;
  PieceClaims& operator=(const PieceClaims&) = delete;

  // A held word, freed (and its waiters woken) when destroyed; empty if the
  // acquirer did not take it (the piece became ready, or the wait timed out).
  class Claim {
   public:
    Claim() = default;
    Claim(Claim&& other) noexcept : word_(other.word_) { other.word_ = nullptr; }
    Claim& operator=(Claim&&) = delete;
    Claim(const Claim&) = delete;
    ~Claim();
    bool held() const { return word_ != nullptr; }

   private:
    friend class PieceClaims;
    explicit Claim(uint32_t* word) : word_(word) {}
    uint32_t* word_ = nullptr;
  };

  enum class Outcome {
    kClaimed,   // this caller holds the word: look once more, then make the piece
    kReady,     // `ready` said the piece is there (no claim)
    kTimedOut,  // another claimer kept the word past `timeout`: make it unclaimed
  };
  struct Acquired {
    Outcome outcome;
    bool waited;  // whether another claimer held the word at first
    Claim claim;  // held iff outcome == kClaimed
  };
  // Claims piece `index`'s word, waiting (at most `timeout`) while another
  // thread or process holds it. `ready` is asked before each wait and after
  // each wake-up: true = the piece was kept meanwhile, stop.
  Acquired Acquire(uint64_t index, const std::function<bool()>& ready, std::chrono::milliseconds timeout) const;

 private:
  explicit PieceClaims(uint8_t* map) : map_(map) {}
  uint32_t* Word(uint64_t index) const;

  uint8_t* const map_;  // the header block, mapped MAP_SHARED
};

}  // namespace ocifs
