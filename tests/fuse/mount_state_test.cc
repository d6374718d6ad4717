#include "fuse/mount_state.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "fuse/keeper_channel.h"

using namespace ocifs;

namespace {

MountState Sample() {
  MountState s;
  s.mountpoint = "/mnt/disk one";
  s.reference = "127.0.0.1:5000/vms/debian:12";
  s.digest = "sha256:abc";
  s.keeper_pid = 10;
  s.server_pid = 11;
  s.takeovers = 3;
  s.started = 1700000000;
  s.binary = "/usr/local/bin/oci-fs";
  s.socket = "/run/oci-fs/mounts/x.sock";
  return s;
}

std::string TempDir() {
  std::string dir = std::filesystem::temp_directory_path().string() + "/mount-state-test-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace

TEST_CASE("mount state survives a round trip through its JSON") {
  MountState s = Sample();
  auto back = MountState::FromJson(s.ToJson());
  REQUIRE(back.ok());
  CHECK(back->mountpoint == s.mountpoint);
  CHECK(back->reference == s.reference);
  CHECK(back->digest == s.digest);
  CHECK(back->keeper_pid == 10);
  CHECK(back->server_pid == 11);
  CHECK(back->takeovers == 3);
  CHECK(back->started == 1700000000);
  CHECK(back->binary == s.binary);
  CHECK(back->socket == s.socket);
}

TEST_CASE("mount state names the field that is wrong") {
  CHECK(MountState::FromJson("not json").status().code() == Code::kCorrupt);
  CHECK(MountState::FromJson("{\"version\": 2}").status().message().find("version") != std::string::npos);
  std::string text = Sample().ToJson();
  auto pos = text.find("\"server_pid\":11");
  REQUIRE(pos != std::string::npos);
  text.replace(pos, 15, "\"server_pid\":-1");
  auto bad = MountState::FromJson(text);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("server_pid") != std::string::npos);
  MountState relative = Sample();
  relative.mountpoint = "mnt";
  CHECK_FALSE(MountState::FromJson(relative.ToJson()).ok());
}

TEST_CASE("mount states are saved under a name made from the mount point and listed back") {
  std::string dir = TempDir();
  MountState a = Sample();
  MountState b = Sample();
  b.mountpoint = "/mnt/a";
  REQUIRE(SaveMountState(dir, a).ok());
  REQUIRE(SaveMountState(dir, b).ok());
  std::ofstream(dir + "/junk.json") << "{";  // skipped, not fatal
  CHECK(MountStatePath(dir, "/mnt/a", ".json") != MountStatePath(dir, "/mnt/b", ".json"));
  CHECK(MountStatePath(dir, "/mnt/a", ".json") == MountStatePath(dir, "/mnt/a", ".json"));
  auto loaded = LoadMountState(MountStatePath(dir, "/mnt/a", ".json"));
  REQUIRE(loaded.ok());
  CHECK(loaded->mountpoint == "/mnt/a");
  auto all = ListMountStates(dir);
  REQUIRE(all.size() == 2);
  CHECK(all[0].mountpoint == "/mnt/a");
  CHECK(all[1].mountpoint == "/mnt/disk one");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a mount state whose processes are gone is stale") {
  MountState s = Sample();
  s.mountpoint = "/nonexistent-mount-point";
  s.keeper_pid = ::getpid();
  s.server_pid = 0;
  MountHealth h = CheckMountHealth(s);
  CHECK(h.keeper_alive);
  CHECK_FALSE(h.server_alive);
  CHECK_FALSE(h.mounted);
  CHECK(h.stale());
}

TEST_CASE("the state directory follows OCIFS_RUN_DIR") {
  ::setenv("OCIFS_RUN_DIR", "/tmp/somewhere", 1);
  CHECK(MountStateDir() == "/tmp/somewhere");
  ::unsetenv("OCIFS_RUN_DIR");
  CHECK_FALSE(MountStateDir().empty());
}

TEST_CASE("keeper messages carry a tag, a payload and a descriptor") {
  auto pair = KeeperSocketPair();
  REQUIRE(pair.ok());
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  REQUIRE(SendKeeperMessage(pair->first.get(), 'T', std::string("init\0bytes", 10), pipe_fds[1]).ok());
  ::close(pipe_fds[1]);
  auto m = ReceiveKeeperMessage(pair->second.get(), 1000);
  REQUIRE(m.ok());
  CHECK(m->tag == 'T');
  CHECK(m->payload == std::string("init\0bytes", 10));
  REQUIRE(m->fd.valid());
  REQUIRE(::write(m->fd.get(), "x", 1) == 1);  // the same pipe, passed along
  char c = 0;
  REQUIRE(::read(pipe_fds[0], &c, 1) == 1);
  CHECK(c == 'x');
  ::close(pipe_fds[0]);
  CHECK(ReceiveKeeperMessage(pair->second.get(), 10).status().code() == Code::kCancelled);
  pair->first.reset();
  CHECK(ReceiveKeeperMessage(pair->second.get(), 1000).status().code() == Code::kUnavailable);
}
