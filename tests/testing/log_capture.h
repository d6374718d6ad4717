// LogCapture: while alive, spdlog's default logger writes into memory, so a
// test can count the messages of a level that contain a text. The previous
// default logger is restored when it goes.
// Thread safety: messages may be logged from any thread; Count is safe too.
#pragma once

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ocifs::testing {

class LogCapture {
 public:
  // Declare it before the sources whose messages it captures: it must outlive
  // the threads that log through it.
  LogCapture()
      : previous_(spdlog::default_logger()),
        sink_(std::make_shared<Sink>()),
        logger_(std::make_shared<spdlog::logger>("capture", sink_)) {
    logger_->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger_);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Messages logged at `level` that contain `text`.
  int Count(spdlog::level::level_enum level, const std::string& text) const { return sink_->Count(level, text); }
  // Every message logged at `level`, in order.
  std::vector<std::string> Messages(spdlog::level::level_enum level) const { return sink_->Messages(level); }

 private:
  class Sink final : public spdlog::sinks::base_sink<std::mutex> {
   public:
    int Count(spdlog::level::level_enum level, const std::string& text) {
      int n = 0;
      for (const std::string& m : Messages(level)) n += m.find(text) != std::string::npos ? 1 : 0;
      return n;
    }
    std::vector<std::string> Messages(spdlog::level::level_enum level) {
      std::lock_guard<std::mutex> lock(this->mutex_);
      std::vector<std::string> out;
      for (const auto& [l, m] : logged_) {
        if (l == level) out.push_back(m);
      }
      return out;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {  // under mutex_
      logged_.emplace_back(msg.level, std::string(msg.payload.begin(), msg.payload.end()));
    }
    void flush_() override {}

   private:
    std::vector<std::pair<spdlog::level::level_enum, std::string>> logged_;
  };

  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace ocifs::testing
