// TarWriter: builds tar streams in memory for the image tests, including the
// odd corners (base-256 numbers, v7 headers, pax and GNU long-name headers,
// signed checksums, old GNU sparse headers).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/memory_source.h"
#include "ocifs/byte_source.h"

namespace ocifs::testing {

struct TarHeaderSpec {
  std::string name{};
  char type = '0';
  uint32_t mode = 0644;
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  uint64_t size = 0;
  std::string linkname{};
  std::string prefix{};        // ustar prefix field
  uint32_t dev_major = 0, dev_minor = 0;
  enum Magic { kUstar, kOldGnu, kV7 } magic = kUstar;
  bool base256_size = false;   // write size in GNU base-256
  bool signed_checksum = false;
};

// len - 1 zero-padded octal digits and a NUL.
inline void PutOctal(std::string& block, size_t off, size_t len, uint64_t v) {
  for (size_t i = len - 1; i-- > 0; v >>= 3) block[off + i] = static_cast<char>('0' + (v & 7));
  block[off + len - 1] = '\0';
}

// One header block with a valid checksum. `tweak` may edit the block before the checksum.
template <typename Tweak>
std::string HeaderBlock(const TarHeaderSpec& h, Tweak tweak) {
  std::string b(512, '\0');
  std::memcpy(b.data(), h.name.data(), std::min<size_t>(h.name.size(), 100));
  PutOctal(b, 100, 8, h.mode);
  PutOctal(b, 108, 8, h.uid);
  PutOctal(b, 116, 8, h.gid);
  if (h.base256_size) {
    b[124] = static_cast<char>(0x80);
    for (int i = 0; i < 8; ++i) b[135 - i] = static_cast<char>(h.size >> (8 * i));
  } else {
    PutOctal(b, 124, 12, h.size);
  }
  PutOctal(b, 136, 12, static_cast<uint64_t>(h.mtime));
  b[156] = h.type;
  std::memcpy(b.data() + 157, h.linkname.data(), std::min<size_t>(h.linkname.size(), 100));
  if (h.magic == TarHeaderSpec::kUstar) {
    std::memcpy(b.data() + 257, "ustar\0" "00", 8);
    std::memcpy(b.data() + 345, h.prefix.data(), std::min<size_t>(h.prefix.size(), 155));
  } else if (h.magic == TarHeaderSpec::kOldGnu) {
    std::memcpy(b.data() + 257, "ustar  \0", 8);
  }
  if (h.magic != TarHeaderSpec::kV7) {
    PutOctal(b, 329, 8, h.dev_major);
    PutOctal(b, 337, 8, h.dev_minor);
  }
  tweak(b);
  std::memset(b.data() + 148, ' ', 8);
  int64_t sum = 0;
  for (char c : b) sum += h.signed_checksum ? static_cast<int64_t>(static_cast<int8_t>(c)) : static_cast<uint8_t>(c);
  PutOctal(b, 148, 7, static_cast<uint64_t>(sum));
  return b;
}
inline std::string HeaderBlock(const TarHeaderSpec& h) {
  return HeaderBlock(h, [](std::string&) {});
}

inline std::string Padded(std::string data) {
  data.resize((data.size() + 511) / 512 * 512, '\0');
  return data;
}

inline std::string PaxRecord(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

class TarWriter {
 public:
  // Appends a header and its data (padded); returns the data's offset.
  uint64_t Add(TarHeaderSpec h, const std::string& data = "") {
    if (h.size == 0) h.size = data.size();
    out_ += HeaderBlock(h);
    uint64_t off = out_.size();
    out_ += Padded(data);
    return off;
  }
  uint64_t File(const std::string& name, const std::string& data, uint32_t mode = 0644) {
    return Add({.name = name, .type = '0', .mode = mode}, data);
  }
  void Dir(const std::string& name, uint32_t mode = 0755) { Add({.name = name, .type = '5', .mode = mode}); }
  void Symlink(const std::string& name, const std::string& target) {
    Add({.name = name, .type = '2', .mode = 0777, .linkname = target});
  }
  void Hardlink(const std::string& name, const std::string& target) {
    Add({.name = name, .type = '1', .linkname = target});
  }
  void Pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x') {
    std::string data;
    for (const auto& [k, v] : records) data += PaxRecord(k, v);
    Add({.name = "PaxHeaders/x", .type = type}, data);
  }
  void GnuLong(char type, const std::string& value) {
    Add({.name = "././@LongLink", .type = type, .magic = TarHeaderSpec::kOldGnu}, value + '\0');
  }
  void Raw(const std::string& bytes) { out_ += bytes; }
  const std::string& bytes() const { return out_; }
  // The stream with the two zero blocks that end an archive.
  std::string Finish() const { return out_ + std::string(1024, '\0'); }

 private:
  std::string out_;
};

inline std::shared_ptr<MemorySource> Source(const std::string& bytes, std::string name = "layer sha256:test") {
  return std::make_shared<MemorySource>(std::vector<uint8_t>(bytes.begin(), bytes.end()), std::move(name));
}

// A stream whose size is not known yet (a gzip layer being decoded): reads past
// the end return 0.
class UnknownSizeSource final : public ByteSource {
 public:
  explicit UnknownSizeSource(std::string bytes) : inner_(Source(std::move(bytes), "layer sha256:stream")) {}
  uint64_t size() const override { return kUnknownSize; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    ++reads_;
    max_end_ = std::max<uint64_t>(max_end_, offset + buf.size());
    return inner_->ReadAt(offset, buf);
  }
  std::string Describe() const override { return inner_->Describe(); }
  mutable int reads_ = 0;
  mutable uint64_t max_end_ = 0;

 private:
  std::shared_ptr<MemorySource> inner_;
};

}  // namespace ocifs::testing
