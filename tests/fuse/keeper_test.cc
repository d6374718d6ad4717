#include "fuse/keeper.h"

#include <catch2/catch.hpp>

namespace ocifs {
namespace {

const char kDigest[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST_CASE("a takeover's reference is pinned to the digest the first server resolved") {
  CHECK(PinnedReference("127.0.0.1:5000/vm/disk:v1", kDigest) == std::string("127.0.0.1:5000/vm/disk@") + kDigest);
  CHECK(PinnedReference("127.0.0.1:5000/vm/disk", kDigest) == std::string("127.0.0.1:5000/vm/disk@") + kDigest);
  CHECK(PinnedReference("debian", kDigest) == std::string("debian@") + kDigest);
  CHECK(PinnedReference("debian:12", kDigest) == std::string("debian@") + kDigest);
}

TEST_CASE("a reference with a digest, an oci layout or no digest known stays as given") {
  const std::string by_digest = std::string("reg:5000/disk@") + kDigest;
  CHECK(PinnedReference(by_digest, kDigest) == by_digest);
  CHECK(PinnedReference("oci:/var/images/disk:v1", kDigest) == "oci:/var/images/disk:v1");
  CHECK(PinnedReference("reg:5000/disk:v1", "") == "reg:5000/disk:v1");
}

}  // namespace
}  // namespace ocifs
