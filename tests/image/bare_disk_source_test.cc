#include "image/bare_disk_source.h"

#include <catch2/catch.hpp>

#include <atomic>

#include "base/memory_source.h"

using namespace ocifs;

namespace {

// A stream whose size() is unknown until `known` is set, as a streaming decoder's.
class LateSizeSource final : public ByteSource {
 public:
  explicit LateSizeSource(std::string bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return known_ ? bytes_.size() : kUnknownSize; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    known_ = true;  // as if the pass had reached the end
    if (offset >= bytes_.size()) return size_t{0};
    size_t n = std::min<size_t>(buf.size(), bytes_.size() - offset);
    std::copy_n(bytes_.data() + offset, n, buf.data());
    return n;
  }

 private:
  std::string bytes_;
  mutable std::atomic<bool> known_{false};
};

std::string Read(const ByteSource& s, uint64_t offset, size_t n, Status* error = nullptr) {
  std::string out(n, '\0');
  auto got = s.ReadAt(offset, std::span(reinterpret_cast<uint8_t*>(out.data()), n));
  if (!got.ok()) {
    if (error) *error = got.status();
    return "";
  }
  out.resize(*got);
  return out;
}

}  // namespace

TEST_CASE("a bare disk of known size reads as its stream") {
  auto disk = BareDiskSource::Open(MemorySource::FromString("0123456789"), std::nullopt, true, "layer 0");
  REQUIRE(disk.ok());
  CHECK((*disk)->size() == 10);
  CHECK(Read(**disk, 8, 5) == "89");
}

TEST_CASE("a size annotation that disagrees with a stream of known size is refused at open") {
  auto disk = BareDiskSource::Open(MemorySource::FromString("0123456789"), 12, true, "layer 0 (sha256:x)");
  REQUIRE_FALSE(disk.ok());
  CHECK(disk.status().message().find("layer 0 (sha256:x)") != std::string::npos);
  CHECK(disk.status().message().find("12") != std::string::npos);
}

TEST_CASE("a stream shorter than its annotation fails the reads past its end, not with zeros") {
  auto disk = BareDiskSource::Open(std::make_shared<LateSizeSource>("0123456789"), 16, true, "layer 1");
  REQUIRE(disk.ok());
  CHECK((*disk)->size() == 16);
  Status error;
  CHECK(Read(**disk, 8, 8, &error).empty());
  CHECK(error.code() == Code::kCorrupt);
  CHECK(error.message().find("layer 1") != std::string::npos);
  // Once the stream's size is known, every read fails: the disk is not what it says.
  Status later;
  CHECK(Read(**disk, 0, 4, &later).empty());
  CHECK(later.code() == Code::kCorrupt);
}

TEST_CASE("a stream longer than its annotation fails once its size is known") {
  auto disk = BareDiskSource::Open(std::make_shared<LateSizeSource>("0123456789"), 4, true, "layer 1");
  REQUIRE(disk.ok());
  Status error;
  CHECK(Read(**disk, 0, 4, &error).empty());  // the read itself learns the size
  CHECK(error.message().find("10 bytes") != std::string::npos);
}

TEST_CASE("a raw disk of unknown size without an annotation is read to its end at open") {
  auto disk = BareDiskSource::Open(std::make_shared<LateSizeSource>("0123456789"), std::nullopt, true, "layer 2");
  REQUIRE(disk.ok());
  CHECK((*disk)->size() == 10);
  CHECK(Read(**disk, 0, 10) == "0123456789");
  auto lazy = BareDiskSource::Open(std::make_shared<LateSizeSource>("0123456789"), std::nullopt, false, "layer 2");
  REQUIRE(lazy.ok());
  CHECK((*lazy)->size() == ByteSource::kUnknownSize);
}
