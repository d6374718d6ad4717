// TempDir: a fresh directory under /tmp for one test, removed with its
// contents when the object goes out of scope. Shared by every module's tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace ocifs::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "ocifs-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::filesystem::filesystem_error("mkdtemp " + tmpl, {});
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside it.
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

  // Writes `text` to `name` (relative, parents created); returns its path.
  std::string Write(const std::string& name, const std::string& text) const {
    std::filesystem::path p = std::filesystem::path(path_) / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  // The bytes of `name` ("" if it cannot be read).
  std::string Read(const std::string& name) const {
    std::ifstream in(*this / name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string path_;
};

}  // namespace ocifs::testing
