// SharedPassProgress: one process's gzip pass tells the others sharing the
// cache dir how far it kept its output (docs/cache-format.md).
#include "decode/shared_pass_progress.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include <catch2/catch.hpp>

#include "testing/temp_dir.h"

using namespace ocifs;

TEST_CASE("a pass's published chunks and zero bits are seen through another mapping of the file") {
  ocifs::testing::TempDir dir;
  const std::string path = dir.path() + "/x.gzprogress";
  auto owner = SharedPassProgress::Open(path);
  auto reader = SharedPassProgress::Open(path);
  REQUIRE(owner.ok());
  REQUIRE(reader.ok());
  CHECK((*reader)->Load() == SharedPassProgress::Published{0, 0});  // nothing yet
  (*owner)->Restart(1 << 20);
  CHECK((*reader)->Load().count == 0);
  (*owner)->Publish(0, false);
  (*owner)->Publish(1, true);
  (*owner)->Publish(2, false);
  CHECK((*reader)->Load() == SharedPassProgress::Published{1 << 20, 3});
  CHECK_FALSE((*reader)->IsZero(0));
  CHECK((*reader)->IsZero(1));
  CHECK_FALSE((*reader)->IsZero(2));
  // A new pass (the owner died, another took over) starts from nothing, in its own chunk size.
  (*owner)->Restart(64 << 10);
  CHECK((*reader)->Load().count == 0);
  CHECK_FALSE((*reader)->IsZero(1));
  (*owner)->Publish(0, false);
  CHECK((*reader)->Load() == SharedPassProgress::Published{64 << 10, 1});
  (*owner)->Withdraw();
  CHECK((*reader)->Load() == SharedPassProgress::Published{0, 0});
  (*owner)->Publish(1, false);  // a withdrawn pass publishes nothing more
  CHECK((*reader)->Load().count == 0);
}

TEST_CASE("a chunk size that is not a multiple of 1 KiB is never published") {
  ocifs::testing::TempDir dir;
  auto owner = SharedPassProgress::Open(dir.path() + "/x.gzprogress");
  REQUIRE(owner.ok());
  (*owner)->Restart(1000);
  (*owner)->Publish(0, false);
  CHECK((*owner)->Load().count == 0);
}

TEST_CASE("a progress file with another magic is refused with its path") {
  ocifs::testing::TempDir dir;
  const std::string path = dir.path() + "/x.gzprogress";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "NOTOCIFS", 8) == 8);
  ::close(fd);
  auto opened = SharedPassProgress::Open(path);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.status().code() == Code::kCorrupt);
  CHECK_THAT(opened.status().ToString(), Catch::Contains(path));
}

TEST_CASE("a reader waiting in another process is woken by the publish, not by its timeout") {
  ocifs::testing::TempDir dir;
  const std::string path = dir.path() + "/x.gzprogress";
  auto reader = SharedPassProgress::Open(path);
  REQUIRE(reader.ok());
  const uint32_t seen = (*reader)->WakeSequence();
  // Nothing published: the wait lasts its timeout.
  auto t0 = std::chrono::steady_clock::now();
  (*reader)->WaitForChange(seen, std::chrono::milliseconds(100));
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(90));
  // Another process (its own mapping) publishes after 200 ms; the reader waits up to 60 s.
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto owner = SharedPassProgress::Open(path);
    if (!owner.ok()) ::_exit(1);
    char c = 0;
    if (::read(ready[0], &c, 1) != 1) ::_exit(2);
    ::usleep(200 * 1000);
    (*owner)->Restart(1 << 20);
    (*owner)->Publish(0, false);
    ::_exit(0);
  }
  ::close(ready[0]);
  const uint32_t before = (*reader)->WakeSequence();
  REQUIRE(::write(ready[1], "x", 1) == 1);
  ::close(ready[1]);
  t0 = std::chrono::steady_clock::now();
  while ((*reader)->Load().count == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    (*reader)->WaitForChange(before, std::chrono::seconds(60));
  }
  const auto waited = std::chrono::steady_clock::now() - t0;
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK((*reader)->Load() == SharedPassProgress::Published{1 << 20, 1});
  CHECK((*reader)->WakeSequence() != before);
  CHECK(waited < std::chrono::seconds(30));  // woken, not timed out (60 s)
  // A sequence already passed returns at once.
  t0 = std::chrono::steady_clock::now();
  (*reader)->WaitForChange(before, std::chrono::seconds(60));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
}
