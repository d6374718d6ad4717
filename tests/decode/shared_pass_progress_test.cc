// SharedPassProgress: one process's gzip pass tells the others sharing the
// cache dir how far it kept its output (docs/cache-format.md).
#include "decode/shared_pass_progress.h"

#include <fcntl.h>
#include <unistd.h>

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
