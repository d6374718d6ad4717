#include "cli/progress_printer.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

using namespace ocifs;

namespace {

// What `print` wrote through a ProgressPrinter on a memory stream.
template <typename Fn>
std::string Printed(bool lines, int tty, Fn print) {
  char* data = nullptr;
  size_t size = 0;
  FILE* out = ::open_memstream(&data, &size);
  {
    ProgressPrinter printer("/disk/disk.img", "oci-fs cat", lines, out, tty);
    print(printer);
  }
  std::fclose(out);
  std::string text(data, size);
  std::free(data);
  return text;
}

}  // namespace

TEST_CASE("on a terminal the bar is redrawn in place and ends with a newline") {
  std::string text = Printed(false, 1, [](ProgressPrinter& p) {
    p.Report(0, 4 << 20);
    p.Report(4 << 20, 4 << 20);  // the end is always drawn
  });
  CHECK(text.find("\r/disk/disk.img [") == 0);
  CHECK(text.find("[##############################] 4.0 / 4.0 MiB") != std::string::npos);
  CHECK(text.back() == '\n');
}

TEST_CASE("off a terminal: lines only when asked for, and the end once") {
  std::string quiet = Printed(false, 0, [](ProgressPrinter& p) { p.Report(1 << 20, 1 << 20); });
  CHECK(quiet.empty());
  std::string lines = Printed(true, 0, [](ProgressPrinter& p) {
    p.Report(0, 2 << 20);
    p.Report(2 << 20, 2 << 20);
    p.Report(2 << 20, 2 << 20);
  });
  CHECK(lines == "oci-fs cat: read 0.0 of 2.0 MiB\noci-fs cat: read 2.0 of 2.0 MiB\n");
  // A total not known yet is not printed as 0.
  std::string unknown = Printed(true, 0, [](ProgressPrinter& p) { p.Report(3 << 20, 0); });
  CHECK(unknown == "oci-fs cat: read 3.0 MiB\n");
  std::string bar = Printed(false, 1, [](ProgressPrinter& p) { p.Report(3 << 20, 0); });
  CHECK(bar == "\r/disk/disk.img 3.0 MiB\n");  // the bar's line ended at the end
}

TEST_CASE("EndBar ends the bar's line once, so what follows has a line of its own") {
  std::string text = Printed(false, 1, [](ProgressPrinter& p) {
    p.Report(1 << 20, 1 << 20);
    p.EndBar();
    p.EndBar();  // nothing drawn since: no second newline
  });
  CHECK(text == "\r/disk/disk.img [##############################] 1.0 / 1.0 MiB\n");
  std::string quiet = Printed(true, 0, [](ProgressPrinter& p) { p.EndBar(); });
  CHECK(quiet.empty());  // no bar off a terminal: no newline either
}
