#include "decode/zstd_entropy.h"

#include <bit>
#include <string>

namespace ocifs {
namespace {

constexpr uint32_t kMinAccuracyLog = 5;

// The 32 bits of `in` starting at bit `pos` (LSB first), zeros past its end.
uint32_t Peek32(std::span<const uint8_t> in, size_t pos) {
  uint64_t v = 0;
  const size_t byte = pos / 8;
  for (size_t i = 0; i < 5; ++i) {
    if (byte + i < in.size()) v |= static_cast<uint64_t>(in[byte + i]) << (8 * i);
  }
  return static_cast<uint32_t>(v >> (pos % 8));
}

// Appends bits LSB first.
class BitWriter {
 public:
  void Put(uint32_t value, uint32_t bits) {
    acc_ |= static_cast<uint64_t>(value) << n_;
    n_ += bits;
    while (n_ >= 8) {
      out_.push_back(static_cast<uint8_t>(acc_));
      acc_ >>= 8;
      n_ -= 8;
    }
  }
  std::vector<uint8_t> Finish() {
    if (n_ > 0) out_.push_back(static_cast<uint8_t>(acc_));
    return std::move(out_);
  }

 private:
  std::vector<uint8_t> out_;
  uint64_t acc_ = 0;
  uint32_t n_ = 0;
};

ZstdNormCounts Make(uint32_t log, std::vector<int16_t> counts) { return {log, std::move(counts)}; }

}  // namespace

uint32_t ZstdMaxSymbol(ZstdSeqTable t) {
  switch (t) {
    case ZstdSeqTable::kLiteralLength: return 35;
    case ZstdSeqTable::kOffset: return 31;
    case ZstdSeqTable::kMatchLength: return 52;
  }
  return 0;
}

uint32_t ZstdMaxAccuracyLog(ZstdSeqTable t) { return t == ZstdSeqTable::kOffset ? 8 : 9; }

const ZstdNormCounts& ZstdPredefined(ZstdSeqTable t) {
  static const ZstdNormCounts kLl = Make(6, {4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2,
                                             2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1});
  static const ZstdNormCounts kMl =
      Make(6, {1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
               1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1});
  static const ZstdNormCounts kOf = Make(5, {1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1,
                                             1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1});
  switch (t) {
    case ZstdSeqTable::kLiteralLength: return kLl;
    case ZstdSeqTable::kOffset: return kOf;
    case ZstdSeqTable::kMatchLength: return kMl;
  }
  return kLl;
}

Result<ZstdNormCounts> ReadZstdNormCounts(std::span<const uint8_t> in, ZstdSeqTable t, size_t* consumed) {
  const uint32_t max_symbol = ZstdMaxSymbol(t);
  if (in.empty()) return Corrupt("FSE table description: no bytes");
  size_t pos = 0;
  ZstdNormCounts nc;
  nc.accuracy_log = (Peek32(in, 0) & 0xF) + kMinAccuracyLog;
  pos = 4;
  if (nc.accuracy_log > ZstdMaxAccuracyLog(t)) {
    return Corrupt("FSE table description: accuracy log " + std::to_string(nc.accuracy_log) + " too large");
  }
  int32_t remaining = (1 << nc.accuracy_log) + 1;
  int32_t threshold = 1 << nc.accuracy_log;
  uint32_t nb_bits = nc.accuracy_log + 1;
  bool previous0 = false;
  while (remaining > 1) {
    if (previous0) {
      uint32_t repeat;
      do {
        repeat = Peek32(in, pos) & 3;
        pos += 2;
        for (uint32_t i = 0; i < repeat; ++i) nc.counts.push_back(0);
        if (nc.counts.size() > max_symbol + 1) return Corrupt("FSE table description: too many symbols");
      } while (repeat == 3);
    }
    if (nc.counts.size() > max_symbol) return Corrupt("FSE table description: too many symbols");
    const uint32_t bits = Peek32(in, pos);
    const int32_t max = (2 * threshold - 1) - remaining;
    int32_t value;
    if (static_cast<int32_t>(bits & static_cast<uint32_t>(threshold - 1)) < max) {
      value = static_cast<int32_t>(bits & static_cast<uint32_t>(threshold - 1));
      pos += nb_bits - 1;
    } else {
      value = static_cast<int32_t>(bits & static_cast<uint32_t>(2 * threshold - 1));
      if (value >= threshold) value -= max;
      pos += nb_bits;
    }
    const int32_t count = value - 1;
    remaining -= count < 0 ? -count : count;
    nc.counts.push_back(static_cast<int16_t>(count));
    previous0 = count == 0;
    if (remaining < 1) return Corrupt("FSE table description: counts exceed the table");
    while (remaining < threshold) {
      --nb_bits;
      threshold >>= 1;
    }
  }
  *consumed = (pos + 7) / 8;
  if (*consumed > in.size()) return Corrupt("FSE table description: truncated");
  return nc;
}

std::vector<uint8_t> WriteZstdNormCounts(const ZstdNormCounts& nc) {
  BitWriter w;
  w.Put(nc.accuracy_log - kMinAccuracyLog, 4);
  const uint32_t table_size = 1u << nc.accuracy_log;
  int32_t remaining = static_cast<int32_t>(table_size) + 1;
  int32_t threshold = static_cast<int32_t>(table_size);
  uint32_t nb_bits = nc.accuracy_log + 1;
  size_t symbol = 0;
  bool previous0 = false;
  const size_t alphabet = nc.counts.size();
  while (symbol < alphabet && remaining > 1) {
    if (previous0) {
      size_t start = symbol;
      while (symbol < alphabet && nc.counts[symbol] == 0) ++symbol;
      if (symbol == alphabet) break;
      while (symbol >= start + 3) {
        start += 3;
        w.Put(3, 2);
      }
      w.Put(static_cast<uint32_t>(symbol - start), 2);
    }
    int32_t count = nc.counts[symbol++];
    const int32_t max = (2 * threshold - 1) - remaining;
    remaining -= count < 0 ? -count : count;
    ++count;
    if (count >= threshold) count += max;
    w.Put(static_cast<uint32_t>(count), count < max ? nb_bits - 1 : nb_bits);
    previous0 = count == 1;
    while (remaining < threshold) {
      --nb_bits;
      threshold >>= 1;
    }
  }
  return w.Finish();
}

ZstdFseTable ZstdFseTable::Build(const ZstdNormCounts& nc) {
  ZstdFseTable t;
  t.accuracy_log = nc.accuracy_log;
  const uint32_t size = 1u << nc.accuracy_log;
  t.cells.resize(size);
  std::vector<uint32_t> next(nc.counts.size());
  uint32_t high = size - 1;
  for (size_t s = 0; s < nc.counts.size(); ++s) {
    if (nc.counts[s] == -1) {
      t.cells[high--].symbol = static_cast<uint16_t>(s);
      next[s] = 1;
    } else {
      next[s] = static_cast<uint32_t>(nc.counts[s]);
    }
  }
  const uint32_t step = (size >> 1) + (size >> 3) + 3;
  const uint32_t mask = size - 1;
  uint32_t pos = 0;
  for (size_t s = 0; s < nc.counts.size(); ++s) {
    for (int i = 0; i < nc.counts[s]; ++i) {
      t.cells[pos].symbol = static_cast<uint16_t>(s);
      do {
        pos = (pos + step) & mask;
      } while (pos > high);
    }
  }
  for (uint32_t u = 0; u < size; ++u) {
    Cell& c = t.cells[u];
    const uint32_t n = next[c.symbol]++;
    c.nb_bits = static_cast<uint8_t>(nc.accuracy_log - (std::bit_width(n) - 1));
    c.base = static_cast<uint16_t>((n << c.nb_bits) - size);
  }
  return t;
}

ZstdFseTable ZstdFseTable::Rle(uint8_t symbol) {
  ZstdFseTable t;
  t.cells.push_back(Cell{symbol, 0, 0});
  return t;
}

ZstdCodeValue ZstdLiteralLengthCode(uint32_t code) {
  static constexpr ZstdCodeValue kHigh[] = {{16, 1},    {18, 1},    {20, 1},   {22, 1},   {24, 2},  {28, 2},
                                            {32, 3},    {40, 3},    {48, 4},   {64, 6},   {128, 7}, {256, 8},
                                            {512, 9},   {1024, 10}, {2048, 11}, {4096, 12}, {8192, 13},
                                            {16384, 14}, {32768, 15}, {65536, 16}};
  if (code < 16) return {code, 0};
  return kHigh[code - 16];
}

ZstdCodeValue ZstdMatchLengthCode(uint32_t code) {
  static constexpr ZstdCodeValue kHigh[] = {
      {35, 1},    {37, 1},    {39, 1},    {41, 1},     {43, 2},     {47, 2},     {51, 3},
      {59, 3},    {67, 4},    {83, 4},    {99, 5},     {131, 7},    {259, 8},    {515, 9},
      {1027, 10}, {2051, 11}, {4099, 12}, {8195, 13},  {16387, 14}, {32771, 15}, {65539, 16}};
  if (code < 32) return {code + 3, 0};
  return kHigh[code - 32];
}

}  // namespace ocifs
