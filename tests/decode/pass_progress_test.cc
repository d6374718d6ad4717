#include "decode/pass_progress.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "ocifs/byte_source.h"
#include "sched/scheduler.h"

using namespace ocifs;

TEST_CASE("pass progress lets a reader through at once for bytes already produced") {
  PassProgress progress("test pass");
  progress.Advance(100);
  auto got = progress.WaitFor(100);
  REQUIRE(got.ok());
  CHECK(got->bytes == 100);
  CHECK_FALSE(got->complete);
  CHECK(progress.size() == ByteSource::kUnknownSize);
  CHECK(progress.failure().ok());
}

TEST_CASE("pass progress wakes a reader waiting ahead of the pass when it advances or completes") {
  PassProgress progress("test pass");
  std::thread pass([&] {
    progress.Advance(10);
    progress.Advance(50);
    progress.Complete(70);
    progress.Finish();
  });
  auto got = progress.WaitFor(1000);  // past the end: waits for the stream to complete
  REQUIRE(got.ok());
  CHECK(got->bytes == 70);
  CHECK(got->complete);
  CHECK(progress.WaitUntilFinished().ok());
  CHECK(progress.size() == 70);
  pass.join();
}

TEST_CASE("a failed pass fails every wait, even for bytes it had produced") {
  PassProgress progress("test pass");
  progress.Advance(100);
  progress.Fail(Corrupt("bad data"));
  progress.Finish();
  CHECK(progress.WaitFor(10).status().code() == Code::kCorrupt);
  CHECK(progress.WaitUntilFinished().code() == Code::kCorrupt);
  CHECK(progress.failure().code() == Code::kCorrupt);
  progress.Complete(100);  // too late: a failed pass stays failed
  CHECK_FALSE(progress.complete());
}

TEST_CASE("a followed pass runs for a waiting reader, and its cancellation fails the rest with kCancelled") {
  auto scheduler = std::make_shared<Scheduler>(SchedulerOptions{});
  PassProgress progress("test pass");
  std::atomic<bool> ran{false};
  {
    BackgroundPass pass(scheduler, "test pass", [&] {
      ran = true;
      progress.Advance(10);  // then stops, as if cancelled
    });
    progress.Follow(pass);
    // Not started: the reader's wait starts it (or runs it on this thread).
    auto got = progress.WaitFor(10);
    REQUIRE(got.ok());
    CHECK(got->bytes == 10);
    CHECK(ran);
  }  // the pass is cancelled and waited for
  auto late = progress.WaitFor(20);
  CHECK(late.status().code() == Code::kCancelled);
  CHECK(late.status().ToString().find("test pass cancelled") != std::string::npos);
  CHECK(progress.WaitFor(5).status().code() == Code::kCancelled);
}

TEST_CASE("a complete stream stays complete when its pass is cancelled") {
  auto scheduler = std::make_shared<Scheduler>(SchedulerOptions{});
  PassProgress progress("test pass");
  {
    BackgroundPass pass(scheduler, "test pass", [&] {
      progress.Complete(5);
      progress.Finish();
    });
    progress.Follow(pass);
    REQUIRE(progress.WaitUntilFinished().ok());
  }
  auto got = progress.WaitFor(5);
  REQUIRE(got.ok());
  CHECK(got->complete);
  CHECK(progress.size() == 5);
}
