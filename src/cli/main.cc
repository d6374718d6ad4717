#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"oci-fs: mount VM disk images from OCI registries, lazily"};
  CLI11_PARSE(app, argc, argv);
  return 0;
}
