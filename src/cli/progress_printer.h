// ProgressPrinter: how far a long command got, on stderr. On a terminal a bar
// redrawn in place ("\r"); otherwise, if `lines` was asked for, a line every
// few seconds and one at the end (accelerate's log), else nothing (`cat`'s
// stderr in a script stays quiet).
//
// Thread safety: Report from one thread at a time. Units: bytes.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ocifs {

class ProgressPrinter {
 public:
  // `label` starts the bar ("reading layers"); `command` names the plain lines
  // ("oci-fs accelerate: read ..."). `out` and `tty` are for tests.
  ProgressPrinter(std::string label, std::string command, bool lines, FILE* out = stderr, int tty = -1);
  ~ProgressPrinter();
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  void Report(uint64_t done, uint64_t total);
  // Ends the bar's line on a terminal (once drawn), so that what is printed
  // next starts a line of its own; a later Report draws a new bar.
  void EndBar();

 private:
  const std::string label_, command_;
  const bool lines_;
  FILE* const out_;
  const bool tty_;
  bool drawn_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_drawn_{}, last_line_{};
};

}  // namespace ocifs
