// SmallBlobStore: image configs kept on local disk by digest, so a second
// mount of an image fetches no blob at all. Each file is verified against its
// digest when read; a bad file is removed and treated as missing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "registry/descriptor.h"

namespace ocifs {

// Thread safety: safe for concurrent use, also across processes (files are
// written to a temp name and renamed). An empty dir disables the store.
class SmallBlobStore {
 public:
  explicit SmallBlobStore(std::string dir) : dir_(std::move(dir)) {}

  // The blob's bytes if kept and intact.
  std::optional<std::vector<uint8_t>> Get(const Descriptor& blob) const;
  // Keeps verified bytes; failures are logged and otherwise ignored.
  void Put(const Descriptor& blob, const std::vector<uint8_t>& bytes) const;

 private:
  std::string PathOf(const Descriptor& blob) const;
  std::string dir_;
};

}  // namespace ocifs
