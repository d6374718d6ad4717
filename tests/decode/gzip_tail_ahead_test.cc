// GzipTailAhead: the layer's end decoded in the background while the pass
// (here a bare PassProgress the test advances) has not got there; a read in
// its exact bytes is served from it, one before it waits for the pass or the
// decode, whichever ends first; the tail goes once the pass is complete.
#include "decode/gzip_tail_ahead.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "base/memory_source.h"
#include "testing/gated_source.h"
#include "testing/layer_test_data.h"

using namespace ocifs;
using namespace ocifs::testing;

namespace {

// A layer whose gzip blob is over GzipTailAhead::kMinBlobBytes: incompressible
// data (stored blocks) with layer-like data before and after.
struct BigLayer {
  TarLike tar;
  std::vector<uint8_t> gz;
};

BigLayer MakeBigLayer() {
  std::vector<uint8_t> disk = MakeLayerData(1 << 20, 51);
  const std::vector<uint8_t> random = IncompressibleBytes(17 << 20, 52);
  disk.insert(disk.end(), random.begin(), random.end());
  const std::vector<uint8_t> text = MakeTextData(200 << 10, 53);
  disk.insert(disk.end(), text.begin(), text.end());
  BigLayer layer{MakeTar(disk), {}};
  layer.gz = GzipMember(layer.tar.bytes, 1);
  REQUIRE(layer.gz.size() >= GzipTailAhead::kMinBlobBytes);
  return layer;
}

}  // namespace

TEST_CASE("GzipTailAhead serves the layer's end before the pass, waits for whichever ends first, and drops it") {
  const BigLayer layer = MakeBigLayer();
  const uint64_t size = layer.tar.bytes.size();
  auto gate = std::make_shared<GatedSource>(std::make_shared<MemorySource>(layer.gz), 0);
  auto scheduler = std::make_shared<Scheduler>(SchedulerOptions{});
  PassProgress progress("test pass");
  std::vector<uint8_t> buf(4096);
  {
    GzipTailAhead ahead(*gate, scheduler, progress);
    struct OpenAtExit {  // the tail's read must not stay held past a failed check
      GatedSource& gate;
      ~OpenAtExit() { gate.Open(); }
    } open_at_exit{*gate};
    // Not started: reads are the pass's.
    auto before = ahead.ServeAhead(size - buf.size(), buf);
    REQUIRE(before.ok());
    CHECK_FALSE(before->has_value());

    ahead.Start(layer.tar.data_end);
    // A read the tail will not hold waits for the pass or the decode (held at the gate):
    // the pass getting there first ends the wait, and the read is the pass's.
    auto early = std::async(std::launch::async, [&] { return ahead.ServeAhead(4096, buf); });
    CHECK(early.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
    progress.Advance(4096 + buf.size());
    REQUIRE(early.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
    auto early_got = early.get();
    REQUIRE(early_got.ok());
    CHECK_FALSE(early_got->has_value());

    // The decode runs once its range read may: the end is served, exact, with the pass far behind.
    gate->Open();
    std::vector<uint8_t> end(buf.size());
    auto served = ahead.ServeAhead(size - end.size(), end);
    REQUIRE(served.ok());
    REQUIRE(served->has_value());
    CHECK(**served == end.size());
    CHECK(std::equal(end.begin(), end.end(), layer.tar.bytes.end() - static_cast<ptrdiff_t>(end.size())));
    REQUIRE(ahead.Get() != nullptr);
    CHECK(ahead.Get()->total() == size);
    // Before the tail's start: the decode has ended, so no wait; the pass's.
    auto behind = ahead.ServeAhead(1 << 20, buf);
    REQUIRE(behind.ok());
    CHECK_FALSE(behind->has_value());

    // Complete: the tail goes, and every read is the pass's.
    progress.Complete(size);
    auto after = ahead.ServeAhead(size - buf.size(), buf);
    REQUIRE(after.ok());
    CHECK_FALSE(after->has_value());
    CHECK(ahead.Get() == nullptr);
  }
  progress.Finish();
}

TEST_CASE("GzipTailAhead decodes no tail for a blob under its minimum") {
  const TarLike tar = MakeTar(MakeLayerData(2 << 20, 54));
  const std::vector<uint8_t> gz = GzipMember(tar.bytes, 6);
  REQUIRE(gz.size() < GzipTailAhead::kMinBlobBytes);
  MemorySource blob(gz);
  auto scheduler = std::make_shared<Scheduler>(SchedulerOptions{});
  PassProgress progress("test pass");
  GzipTailAhead ahead(blob, scheduler, progress);
  ahead.Start(tar.data_end);
  std::vector<uint8_t> buf(512);
  auto got = ahead.ServeAhead(tar.bytes.size() - buf.size(), buf);  // no wait: nothing was asked
  REQUIRE(got.ok());
  CHECK_FALSE(got->has_value());
  CHECK(ahead.Get() == nullptr);
  progress.Complete(tar.bytes.size());
  progress.Finish();
}
