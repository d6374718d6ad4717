#include "cli/mount_command.h"

#include <catch2/catch.hpp>

using namespace ocifs;

TEST_CASE("mount options from fstab set the matching flags") {
  MountFlags flags;
  flags.options = {"rw,tls_verify=false,cache_dir=/var/tmp/c,cache_size=1G,allow_other,mode=tree,_netdev,noatime"};
  std::vector<std::string> fuse;
  REQUIRE(ApplyMountOptions(&flags, &fuse).ok());
  REQUIRE(flags.common.tls_verify == "false");
  REQUIRE(flags.cache_dir == "/var/tmp/c");
  REQUIRE(flags.cache_size == "1G");
  REQUIRE(flags.allow_other);
  REQUIRE(flags.mode == "tree");
  REQUIRE(fuse == std::vector<std::string>{"noatime"});
}

TEST_CASE("an unknown mount option is an error naming it") {
  MountFlags flags;
  flags.options = {"tls_verify=false,frobnicate=3"};
  std::vector<std::string> fuse;
  Status s = ApplyMountOptions(&flags, &fuse);
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE(s.message().find("frobnicate") != std::string::npos);
}

TEST_CASE("escaped commas stay inside an option value") {
  MountFlags flags;
  flags.options = {"cache_dir=/tmp/a\\,b"};
  std::vector<std::string> fuse;
  REQUIRE(ApplyMountOptions(&flags, &fuse).ok());
  REQUIRE(flags.cache_dir == "/tmp/a,b");
}

TEST_CASE("a mode other than disk or tree is refused") {
  MountFlags flags;
  flags.options = {"mode=block"};
  std::vector<std::string> fuse;
  REQUIRE_FALSE(ApplyMountOptions(&flags, &fuse).ok());
}

TEST_CASE("readahead and prefetch mount options set the read-ahead window and the whole-layer fetch") {
  MountFlags flags;
  REQUIRE_FALSE(flags.prefetch_all);
  REQUIRE(flags.readahead == "4M");
  flags.options = {"readahead=16M,prefetch=all"};
  std::vector<std::string> fuse;
  REQUIRE(ApplyMountOptions(&flags, &fuse).ok());
  REQUIRE(flags.readahead == "16M");
  REQUIRE(flags.prefetch_all);
  flags.options = {"prefetch=none"};
  REQUIRE(ApplyMountOptions(&flags, &fuse).ok());
  REQUIRE_FALSE(flags.prefetch_all);
  flags.options = {"prefetch=some"};
  Status s = ApplyMountOptions(&flags, &fuse);
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE(s.message().find("prefetch") != std::string::npos);
}
