// PieceClaims: one claimer per piece across threads and processes, a dead
// claimer taken over at once, a hung one waited for only up to the timeout.
#include "cache/piece_claims.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "base/unique_fd.h"
#include "cache/kept_piece_format.h"
#include "testing/temp_dir.h"

using namespace ocifs;
using ocifs::testing::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A file with a whole header block, as a kept-piece file has.
UniqueFd ClaimFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(fd.valid());
  REQUIRE(::ftruncate(fd.get(), kKeptHeaderBlock) == 0);
  return fd;
}

std::unique_ptr<PieceClaims> MapClaims(int fd) {
  auto claims = PieceClaims::Map(fd);
  REQUIRE(claims.ok());
  return std::move(*claims);
}

const auto kNever = [] { return false; };

// A child that claims piece `index` of `path` and then exits without
// releasing it (a crash), or hangs holding it. Returns its pid once it holds it.
pid_t ChildHolding(const std::string& path, uint64_t index, bool hang) {
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    UniqueFd fd(::open(path.c_str(), O_RDWR));
    auto claims = PieceClaims::Map(fd.get());
    if (!claims.ok()) ::_exit(2);
    auto got = (*claims)->Acquire(index, [] { return false; }, 1s);
    char c = got.outcome == PieceClaims::Outcome::kClaimed ? 'y' : 'n';
    if (::write(pipefd[1], &c, 1) != 1) ::_exit(3);
    if (hang) ::pause();
    ::_exit(0);  // no destructors: the word stays held, as after a crash
  }
  ::close(pipefd[1]);
  char c = 0;
  REQUIRE(::read(pipefd[0], &c, 1) == 1);
  ::close(pipefd[0]);
  REQUIRE(c == 'y');
  return child;
}

}  // namespace

TEST_CASE("piece claims: a free piece is claimed at once, and freed when the claim goes") {
  TempDir tmp;
  UniqueFd fd = ClaimFile(tmp.path() + "/kept");
  auto claims = MapClaims(fd.get());
  {
    auto got = claims->Acquire(7, kNever, 1s);
    CHECK(got.outcome == PieceClaims::Outcome::kClaimed);
    CHECK_FALSE(got.waited);
    CHECK(got.claim.held());
    // The word is the claimer's pid, in the header block's claim words.
    uint32_t word = 0;
    REQUIRE(::pread(fd.get(), &word, 4, static_cast<off_t>(kKeptClaimsOffset + 7 * 4)) == 4);
    CHECK(word == static_cast<uint32_t>(::getpid()));
  }
  uint32_t word = 1;
  REQUIRE(::pread(fd.get(), &word, 4, static_cast<off_t>(kKeptClaimsOffset + 7 * 4)) == 4);
  CHECK(word == 0);
  CHECK(claims->Acquire(7, kNever, 1s).outcome == PieceClaims::Outcome::kClaimed);
}

TEST_CASE("piece claims: a waiter takes the claim when the holder releases it") {
  TempDir tmp;
  UniqueFd fd = ClaimFile(tmp.path() + "/kept");
  auto claims = MapClaims(fd.get());
  auto other = MapClaims(fd.get());  // a second mapping, as another process has
  auto held = claims->Acquire(3, kNever, 1s);
  REQUIRE(held.claim.held());
  std::thread maker([&] {
    std::this_thread::sleep_for(100ms);
    PieceClaims::Claim drop(std::move(held.claim));
  });
  const auto start = Clock::now();
  auto got = other->Acquire(3, kNever, 10s);
  const auto took = Clock::now() - start;
  maker.join();
  CHECK(got.outcome == PieceClaims::Outcome::kClaimed);
  CHECK(got.waited);
  CHECK(took >= 90ms);
  CHECK(took < 2s);  // not the timeout
}

TEST_CASE("piece claims: a waiter stops waiting once the piece is ready") {
  TempDir tmp;
  UniqueFd fd = ClaimFile(tmp.path() + "/kept");
  auto claims = MapClaims(fd.get());
  auto held = claims->Acquire(4, kNever, 1s);
  REQUIRE(held.claim.held());
  std::atomic<bool> kept{false};
  std::thread maker([&] {
    std::this_thread::sleep_for(100ms);
    kept = true;  // kept by the holder, which keeps its claim a while longer
  });
  const auto start = Clock::now();
  auto got = claims->Acquire(4, [&] { return kept.load(); }, 10s);
  const auto took = Clock::now() - start;
  maker.join();
  CHECK(got.outcome == PieceClaims::Outcome::kReady);
  CHECK(got.waited);
  CHECK_FALSE(got.claim.held());
  CHECK(took < 2s);
}

TEST_CASE("piece claims: a claim left by a process that died is taken over at once") {
  TempDir tmp;
  const std::string path = tmp.path() + "/kept";
  UniqueFd fd = ClaimFile(path);
  pid_t child = ChildHolding(path, 11, /*hang=*/false);
  int wstatus = 0;
  REQUIRE(::waitpid(child, &wstatus, 0) == child);
  auto claims = MapClaims(fd.get());
  const auto start = Clock::now();
  auto got = claims->Acquire(11, kNever, 10s);
  CHECK(got.outcome == PieceClaims::Outcome::kClaimed);
  CHECK(Clock::now() - start < 1s);
}

TEST_CASE("piece claims: a claimer that hangs is waited for only up to the timeout") {
  TempDir tmp;
  const std::string path = tmp.path() + "/kept";
  UniqueFd fd = ClaimFile(path);
  pid_t child = ChildHolding(path, 5, /*hang=*/true);
  auto claims = MapClaims(fd.get());
  const auto start = Clock::now();
  auto got = claims->Acquire(5, kNever, 300ms);
  const auto took = Clock::now() - start;
  ::kill(child, SIGKILL);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  CHECK(got.outcome == PieceClaims::Outcome::kTimedOut);
  CHECK(got.waited);
  CHECK_FALSE(got.claim.held());
  CHECK(took >= 300ms);
  CHECK(took < 3s);
  // Another piece's word is free meanwhile (piece 6 is not 5 mod 512).
  CHECK(claims->Acquire(6, kNever, 1s).outcome == PieceClaims::Outcome::kClaimed);
}
