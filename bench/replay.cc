// replay: reads a file the way a benchmark scenario says, with pread, and reports JSON.
//
//   replay trace FILE TRACE.csv [--threads N]   the offset,length lines of TRACE.csv, in order
//   replay random FILE COUNT [--size B] [--seed S] [--threads N]   COUNT aligned B-byte reads
//   replay seq FILE [--size B]                  the whole file, front to back, B bytes a read
//
// Output (stdout, one line): {"mode":..,"reads":N,"bytes":N,"seconds":S,"errors":N}
// With N threads the reads are dealt out in order to whichever thread is free (a shared
// cursor), as a guest with N requests in flight would issue them. Built by bench/run.sh:
//   g++ -O2 -std=c++20 -pthread bench/replay.cc -o bench/work/replay
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Read {
  uint64_t offset;
  uint64_t length;
};

int Usage() {
  std::fprintf(stderr,
               "usage: replay trace FILE TRACE.csv [--threads N]\n"
               "       replay random FILE COUNT [--size B] [--seed S] [--threads N]\n"
               "       replay seq FILE [--size B]\n");
  return 2;
}

bool LoadTrace(const std::string& path, std::vector<Read>* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || !std::isdigit(static_cast<unsigned char>(line[0])))
      continue;  // header or comment
    Read r{};
    if (std::sscanf(line.c_str(), "%lu,%lu", &r.offset, &r.length) == 2 && r.length > 0)
      out->push_back(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  std::string mode = argv[1], file = argv[2];
  std::vector<std::string> rest(argv + 3, argv + argc);
  uint64_t size = 0, seed = 1;
  int threads = 1;
  std::vector<std::string> pos;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == "--threads" && i + 1 < rest.size()) threads = std::atoi(rest[++i].c_str());
    else if (rest[i] == "--size" && i + 1 < rest.size()) size = std::strtoull(rest[++i].c_str(), nullptr, 0);
    else if (rest[i] == "--seed" && i + 1 < rest.size()) seed = std::strtoull(rest[++i].c_str(), nullptr, 0);
    else pos.push_back(rest[i]);
  }
  if (threads < 1) threads = 1;

  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "replay: open %s: %s\n", file.c_str(), std::strerror(errno));
    return 1;
  }
  struct stat st {};
  fstat(fd, &st);
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  std::vector<Read> reads;
  if (mode == "trace") {
    if (pos.size() != 1) return Usage();
    if (!LoadTrace(pos[0], &reads)) {
      std::fprintf(stderr, "replay: cannot read trace %s\n", pos[0].c_str());
      return 1;
    }
  } else if (mode == "random") {
    if (pos.size() != 1) return Usage();
    uint64_t count = std::strtoull(pos[0].c_str(), nullptr, 10);
    if (size == 0) size = 4096;
    std::mt19937_64 rng(seed);
    uint64_t slots = file_size / size;
    if (slots == 0) return Usage();
    for (uint64_t i = 0; i < count; ++i) reads.push_back({(rng() % slots) * size, size});
  } else if (mode == "seq") {
    if (size == 0) size = 1 << 20;
    for (uint64_t off = 0; off < file_size; off += size) reads.push_back({off, size});
  } else {
    return Usage();
  }

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0}, errors{0};
  // REPLAY_TIMES=DIR: DIR/<unix time of the start>.csv gets offset,length,end per read (end in
  // seconds from the first read's start), in the reads' order: where a scenario's time goes.
  const char* times_path = std::getenv("REPLAY_TIMES");
  std::vector<double> ends(times_path ? reads.size() : 0);
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    std::vector<char> buf;
    for (size_t i; (i = next.fetch_add(1)) < reads.size();) {
      const Read& r = reads[i];
      if (buf.size() < r.length) buf.resize(r.length);
      uint64_t done = 0;
      while (done < r.length) {
        ssize_t n = pread(fd, buf.data() + done, r.length - done, static_cast<off_t>(r.offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          errors.fetch_add(1);
          break;
        }
        if (n == 0) break;  // past the end
        done += static_cast<uint64_t>(n);
      }
      bytes.fetch_add(done);
      if (times_path) ends[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  };
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(fd);
  if (times_path) {
    const double wall_start =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() - secs;
    const std::string name = std::string(times_path) + "/" + std::to_string(wall_start) + ".csv";
    if (FILE* out = std::fopen(name.c_str(), "w")) {
      for (size_t i = 0; i < reads.size(); ++i) {
        std::fprintf(out, "%lu,%lu,%.6f\n", static_cast<unsigned long>(reads[i].offset),
                     static_cast<unsigned long>(reads[i].length), ends[i]);
      }
      std::fclose(out);
    }
  }
  std::printf("{\"mode\":\"%s\",\"reads\":%zu,\"bytes\":%lu,\"seconds\":%.6f,\"errors\":%lu,\"threads\":%d}\n",
              mode.c_str(), reads.size(), bytes.load(), secs, errors.load(), threads);
  return errors.load() ? 1 : 0;
}
