// ConcurrentReadMismatches: hammers one source from several threads with
// random preads and counts those that failed or differed from `expected`
// (the source's true bytes). For the thread-safety tests of every stage.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "ocifs/byte_source.h"

namespace ocifs::testing {

// `threads` threads, `reads` reads each, at random offsets and of 1..200000
// bytes; thread t draws from a generator seeded with seed + t.
inline int ConcurrentReadMismatches(const ByteSource& source, const std::vector<uint8_t>& expected,
                                    unsigned threads, int reads, uint64_t seed) {
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      std::vector<uint8_t> buf;
      for (int i = 0; i < reads; ++i) {
        uint64_t offset = rng() % expected.size();
        buf.resize(1 + rng() % 200000);
        auto n = source.ReadAt(offset, buf);
        size_t expect = std::min<size_t>(buf.size(), expected.size() - offset);
        if (!n.ok() || *n != expect ||
            !std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(expect),
                        expected.begin() + static_cast<ptrdiff_t>(offset))) {
          ++failures;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return failures.load();
}

}  // namespace ocifs::testing
