#include "cli/progress_printer.h"

#include <unistd.h>

#include <algorithm>

namespace ocifs {

ProgressPrinter::ProgressPrinter(std::string label, std::string command, bool lines, FILE* out, int tty)
    : label_(std::move(label)),
      command_(std::move(command)),
      lines_(lines),
      out_(out),
      tty_(tty >= 0 ? tty == 1 : ::isatty(::fileno(out)) == 1) {}

ProgressPrinter::~ProgressPrinter() { EndBar(); }

void ProgressPrinter::EndBar() {
  if (tty_ && drawn_) std::fputc('\n', out_);
  drawn_ = false;
  std::fflush(out_);
}

void ProgressPrinter::Report(uint64_t done, uint64_t total) {
  const double mib = 1024.0 * 1024.0;
  const auto now = std::chrono::steady_clock::now();
  const bool end = total != 0 && done >= total;
  if (tty_) {
    // At most 10 redraws a second, and the last one.
    if (drawn_ && !end && now - last_drawn_ < std::chrono::milliseconds(100)) return;
    const int width = 30;
    if (total == 0) {  // not known yet (accelerate learns the layers' sizes as it opens them)
      std::fprintf(out_, "\r%s %.1f MiB", label_.c_str(), static_cast<double>(done) / mib);
    } else {
      const int filled = static_cast<int>(std::min<uint64_t>(done, total) * width / total);
      std::fprintf(out_, "\r%s [%.*s%*s] %.1f / %.1f MiB", label_.c_str(), filled, "##############################",
                   width - filled, "", static_cast<double>(done) / mib, static_cast<double>(total) / mib);
    }
    drawn_ = true;
    last_drawn_ = now;
  } else if (lines_ && (now - last_line_ >= std::chrono::seconds(5) || (end && !finished_))) {
    finished_ = end;
    if (total == 0) {
      std::fprintf(out_, "%s: read %.1f MiB\n", command_.c_str(), static_cast<double>(done) / mib);
    } else {
      std::fprintf(out_, "%s: read %.1f of %.1f MiB\n", command_.c_str(), static_cast<double>(done) / mib,
                   static_cast<double>(total) / mib);
    }
    last_line_ = now;
  }
  std::fflush(out_);
}

}  // namespace ocifs
