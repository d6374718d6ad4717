#include "base/self_executable.h"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace ocifs;

TEST_CASE("the running executable and a program beside it are named by absolute paths") {
  const std::string self = SelfExecutable();
  REQUIRE(!self.empty());
  const std::filesystem::path path(self);
  CHECK(path.is_absolute());
  CHECK(std::filesystem::exists(path));
  CHECK(path.filename() == "base_test");
  CHECK(SiblingExecutable("oci-fs-csi") == (path.parent_path() / "oci-fs-csi").string());
}
