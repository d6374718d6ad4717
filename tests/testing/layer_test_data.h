// Test data for the decoders' tests: layer-like bytes (random, text-like and
// zero runs, so deflate emits stored, fixed and dynamic blocks) and gzip
// members of them made with zlib.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace ocifs::testing {

// `size` bytes of runs of 1000..71000 bytes: random, text (`words` over
// and over) or zeros.
inline std::vector<uint8_t> MakeLayerData(size_t size, uint32_t seed,
                                          const std::string& words = "disk qcow2 layer tar entry checkpoint window member frame ") {
  std::mt19937 rng(seed);
  std::vector<uint8_t> d(size);
  for (size_t i = 0; i < size;) {
    size_t run = std::min<size_t>(size - i, 1000 + rng() % 70000);
    int kind = rng() % 3;
    for (size_t j = 0; j < run; ++j) {
      d[i + j] = kind == 0 ? static_cast<uint8_t>(rng()) : kind == 1 ? words[(i + j) % words.size()] : 0;
    }
    i += run;
  }
  return d;
}

// `size` bytes of words drawn at random from a vocabulary of a few hundred:
// deflate's matches are short, so its blocks end inside such text, and the
// matches after a checkpoint reach back into its window (a changed window
// byte changes the output).
inline std::vector<uint8_t> MakeTextData(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> vocabulary;
  for (int i = 0; i < 300; ++i) {
    std::string word;
    for (size_t n = 2 + rng() % 9; n > 0; --n) word.push_back(static_cast<char>('a' + rng() % 26));
    vocabulary.push_back(word + (rng() % 8 == 0 ? "\n" : " "));
  }
  std::vector<uint8_t> d;
  d.reserve(size + 16);
  while (d.size() < size) {
    const std::string& word = vocabulary[rng() % vocabulary.size()];
    d.insert(d.end(), word.begin(), word.end());
  }
  d.resize(size);
  return d;
}

// One gzip member of `data` (zlib, `level`); empty if zlib fails.
inline std::vector<uint8_t> GzipMember(std::span<const uint8_t> data, int level = 6) {
  z_stream s{};
  if (deflateInit2(&s, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::vector<uint8_t> out(deflateBound(&s, data.size()) + 64);
  s.next_in = const_cast<Bytef*>(data.data());
  s.avail_in = static_cast<uInt>(data.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  const int ret = deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
  if (ret != Z_STREAM_END) return {};
  return out;
}

// A tar-like layer: 1024 bytes of headers, the disk's data, padding to 512,
// then the archive's end (1024 zero bytes, zeros to a `record`-byte record).
struct TarLike {
  std::vector<uint8_t> bytes;
  uint64_t data_end = 0;  // the disk's data end, rounded up to 512
};

inline TarLike MakeTar(const std::vector<uint8_t>& disk, uint64_t record = 10240) {
  TarLike t;
  t.bytes.assign(1024, 'h');
  t.bytes.insert(t.bytes.end(), disk.begin(), disk.end());
  t.bytes.resize((t.bytes.size() + 511) / 512 * 512, 0);
  t.data_end = t.bytes.size();
  t.bytes.resize(t.bytes.size() + 1024, 0);
  t.bytes.resize((t.bytes.size() + record - 1) / record * record, 0);
  return t;
}

// n random bytes (deflate stores them).
inline std::vector<uint8_t> IncompressibleBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

}  // namespace ocifs::testing
