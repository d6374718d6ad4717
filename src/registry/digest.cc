#include "registry/digest.h"

#include <openssl/evp.h>

namespace ocifs {

Status ValidateDigest(std::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("invalid digest \"" + std::string(digest) + "\": expected sha256:<64 hex digits>");
  }
  std::string_view alg = digest.substr(0, colon), hex = digest.substr(colon + 1);
  if (alg != "sha256") {
    return Unsupported("digest algorithm \"" + std::string(alg) + "\" is not supported (only sha256)");
  }
  bool ok = hex.size() == 64;
  for (char c : hex) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) {
    return InvalidArgument("invalid digest \"" + std::string(digest.substr(0, 80)) +
                           "\": expected sha256:<64 lowercase hex digits>");
  }
  return Status::Ok();
}

struct Sha256Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256Hasher::Sha256Hasher() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_->md); }

void Sha256Hasher::Update(std::span<const uint8_t> bytes) {
  EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size());
}

std::string Sha256Hasher::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    s += kHex[out[i] >> 4];
    s += kHex[out[i] & 15];
  }
  return s;
}

std::string Sha256Digest(std::span<const uint8_t> bytes) {
  Sha256Hasher h;
  h.Update(bytes);
  return h.Finish();
}

Status VerifyDigest(std::span<const uint8_t> bytes, std::string_view expected, std::string_view what) {
  std::string actual = Sha256Digest(bytes);
  if (actual != expected) {
    return Corrupt(std::string(what) + ": digest mismatch: expected " + std::string(expected) + ", got " +
                   actual);
  }
  return Status::Ok();
}

}  // namespace ocifs
