// Servers for tests that talk to a registry: a real /usr/bin/docker-registry
// on a free 127.0.0.1 port (RegistryProcess), any child process that listens
// on a port (ChildProcess: a Python stand-in), and the TLS + htpasswd files
// docker-registry needs for Basic auth (MakeTlsHtpasswd). Children are killed
// and reaped when their owner goes, also when a REQUIRE fails. Catch2 only.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace ocifs::testing {

// A TCP port on 127.0.0.1 that was free a moment ago.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A child process listening on a 127.0.0.1 port: started with stdout and
// stderr to `log`, waited for until it accepts connections (30 s on a busy
// machine), killed (SIGTERM, then SIGKILL) and reaped when this goes away.
// It also gets SIGKILL if the thread that started it ends first (setpriv
// --pdeathsig), so a crashed test leaves no server behind: start it from the
// test's own thread.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& args, const std::filesystem::path& log, int port) {
    std::vector<std::string> full;
    if (access("/usr/bin/setpriv", X_OK) == 0) full = {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (const auto& a : full) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(port));
      bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
      close(fd);
      if (up) return;
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL(args[0] << " exited before listening on port " << port << "; see " << log.string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL(args[0] << " did not start listening on port " << port);
  }
  ~ChildProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

 private:
  pid_t pid_ = -1;
};

// docker-registry with filesystem storage under dir; `http_extra` is added to
// its http: section (tls:), `extra` to the config (auth:).
class RegistryProcess {
 public:
  static constexpr const char* kBinary = "/usr/bin/docker-registry";

  explicit RegistryProcess(const std::filesystem::path& dir, const std::string& http_extra = "",
                           const std::string& extra = "")
      : port_(FreePort()), child_(Start(dir, port_, http_extra, extra), dir / "registry.log", port_) {}
  // "127.0.0.1:PORT"
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  static std::vector<std::string> Start(const std::filesystem::path& dir, int port, const std::string& http_extra,
                                        const std::string& extra) {
    std::filesystem::create_directories(dir / "data");
    std::ofstream(dir / "config.yml") << "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                                      << "storage:\n  filesystem:\n    rootdirectory: " << (dir / "data").string()
                                      << "\nhttp:\n  addr: 127.0.0.1:" << port << "\n"
                                      << http_extra << extra;
    return {kBinary, "serve", (dir / "config.yml").string()};
  }
  int port_;
  ChildProcess child_;
};

// The files docker-registry needs for Basic auth (it wants TLS with it),
// made under `dir`: a CA (dir/certs/ca.crt: give cert_dir as --cert-dir), a
// server certificate for 127.0.0.1, an htpasswd file with one user.
struct TlsHtpasswd {
  std::string cert_dir;
  std::string http_extra;  // for RegistryProcess: the tls: part of http:
  std::string extra;       // for RegistryProcess: the auth: section
};

inline TlsHtpasswd MakeTlsHtpasswd(const std::filesystem::path& dir, const std::string& user,
                                   const std::string& password) {
  std::filesystem::create_directories(dir / "certs");
  auto run = [](const std::string& cmd) { return std::system(cmd.c_str()) == 0; };
  std::string q = " >/dev/null 2>&1";
  REQUIRE(run("cd " + dir.string() +
              " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key"
              " -out certs/ca.crt -subj /CN=ocifs-test-ca -days 2" + q));
  std::ofstream(dir / "san.ext") << "subjectAltName=IP:127.0.0.1\n";
  REQUIRE(run("cd " + dir.string() +
              " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key"
              " -out server.csr -subj /CN=127.0.0.1" + q +
              " && openssl x509 -req -in server.csr -CA certs/ca.crt -CAkey ca.key -CAcreateserial"
              " -out server.crt -days 2 -extfile san.ext" + q));
  REQUIRE(run("htpasswd -Bbn " + user + " '" + password + "' > " + (dir / "htpasswd").string()));
  TlsHtpasswd out;
  out.cert_dir = (dir / "certs").string();
  out.http_extra = "  tls:\n    certificate: " + (dir / "server.crt").string() + "\n    key: " +
                   (dir / "server.key").string() + "\n";
  out.extra = "auth:\n  htpasswd:\n    realm: ocifs-test\n    path: " + (dir / "htpasswd").string() + "\n";
  return out;
}

// A file of the source tree (tests/support/x.py): $OCIFS_SOURCE_DIR (set by
// ctest), else the tree this header was compiled from.
inline std::string SourcePath(const std::string& relative) {
  const char* root = std::getenv("OCIFS_SOURCE_DIR");
  std::filesystem::path base = root && *root ? std::filesystem::path(root)
                                             : std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return (base / relative).string();
}

}  // namespace ocifs::testing
