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
  // Blobs larger than this are not kept (an acceleration artifact's index,
  // tens of MiB, is kept by its own side file: a second copy only costs a
  // write of that size on the mount's path).
  static constexpr uint64_t kMaxKeptBytes = uint64_t{4} << 20;
  // Keeps verified bytes up to kMaxKeptBytes; failures are logged and otherwise ignored.
  void Put(const Descriptor& blob, const std::vector<uint8_t>& bytes) const;

 private:
  std::string PathOf(const Descriptor& blob) const;
  std::string dir_;
};

}  // namespace ocifs
