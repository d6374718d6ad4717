// Content digests ("sha256:<64 lowercase hex>"): grammar and verification.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ocifs/status.h"

namespace ocifs {

// OK if `digest` is "sha256:" followed by 64 lowercase hex digits. Other
// algorithms are kUnsupported; anything else kInvalidArgument.
Status ValidateDigest(std::string_view digest);

// "sha256:<hex>" of the bytes.
std::string Sha256Digest(std::span<const uint8_t> bytes);

// kCorrupt "<what>: digest mismatch: expected X, got Y" unless they match.
Status VerifyDigest(std::span<const uint8_t> bytes, std::string_view expected, std::string_view what);

// An incremental SHA-256. Not thread-safe; owns its OpenSSL context.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(std::span<const uint8_t> bytes);
  std::string Finish();  // "sha256:<hex>"

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace ocifs
