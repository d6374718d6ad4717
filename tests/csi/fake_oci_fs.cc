// fake-oci-fs: a stand-in for `oci-fs inspect --json` and `oci-fs mount`
// with the same command line and exit-status contract (docs/cli.md), for
// the CSI plugin's tests. No registry: the image is the reference's name.
//  - a repository containing "unknown": `oci-fs: not found: ...`, exit 1;
//  - a repository containing "private": needs --authfile FILE whose text
//    contains "good-token", else `oci-fs: unauthenticated: ...`, exit 1;
//  - otherwise inspect prints {"digest": "sha256:<hash of the name>"} and
//    mount serves DIR/disk.img = "disk of REPO\n" repeated to 1 MiB,
//    daemonized (returns once mounted), read-only.
#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string g_disk;

std::string Repo(std::string ref) {
  if (auto at = ref.find('@'); at != std::string::npos) ref.resize(at);
  auto slash = ref.rfind('/');
  auto colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) ref.resize(colon);
  return ref;
}

std::string Digest(const std::string& repo) {
  unsigned long long h = 1469598103934665603ull;
  for (unsigned char c : repo) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", h);
  std::string d = "sha256:";
  for (int i = 0; i < 4; ++i) d += buf;
  return d;
}

int Check(const std::string& ref, const std::string& authfile) {
  std::string repo = Repo(ref);
  if (repo.find("unknown") != std::string::npos) {
    std::fprintf(stderr, "oci-fs: not found: manifest unknown: %s\n", ref.c_str());
    return 1;
  }
  if (repo.find("private") != std::string::npos) {
    std::ifstream in(authfile);
    std::stringstream ss;
    ss << in.rdbuf();
    if (authfile.empty() || ss.str().find("good-token") == std::string::npos) {
      std::fprintf(stderr, "oci-fs: unauthenticated: registry answered 401 for %s\n", ref.c_str());
      return 1;
    }
  }
  return 0;
}

int GetAttr(const char* path, struct stat* st, fuse_file_info*) {
  std::memset(st, 0, sizeof *st);
  if (std::strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
  } else if (std::strcmp(path, "/disk.img") == 0) {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = static_cast<off_t>(g_disk.size());
  } else {
    return -ENOENT;
  }
  return 0;
}

int ReadDir(const char*, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
            fuse_readdir_flags) {
  fill(buf, ".", nullptr, 0, FUSE_FILL_DIR_PLUS);
  fill(buf, "..", nullptr, 0, FUSE_FILL_DIR_PLUS);
  fill(buf, "disk.img", nullptr, 0, FUSE_FILL_DIR_PLUS);
  return 0;
}

int Open(const char* path, fuse_file_info* fi) {
  if (std::strcmp(path, "/disk.img") != 0) return -ENOENT;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  return 0;
}

int Read(const char*, char* buf, size_t size, off_t off, fuse_file_info*) {
  if (off < 0 || static_cast<size_t>(off) >= g_disk.size()) return 0;
  size_t n = std::min(size, g_disk.size() - static_cast<size_t>(off));
  std::memcpy(buf, g_disk.data() + off, n);
  return static_cast<int>(n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string cmd = argv[1];
  std::vector<std::string> pos;
  std::string authfile, opts = "ro";
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--authfile" && i + 1 < argc) {
      authfile = argv[++i];
    } else if ((a == "--cert-dir" || a == "--platform" || a == "--cache-dir" || a == "--mode" ||
                a == "--disk-path") && i + 1 < argc) {
      ++i;
    } else if (a == "-o" && i + 1 < argc) {
      opts = argv[++i];
    } else if (a.rfind("--", 0) == 0) {
      // --json, --tls-verify=...
    } else {
      pos.push_back(a);
    }
  }
  if (cmd == "inspect" && pos.size() == 1) {
    if (int rc = Check(pos[0], authfile)) return rc;
    std::printf("{\"reference\": \"%s\", \"digest\": \"%s\"}\n", pos[0].c_str(),
                Digest(Repo(pos[0])).c_str());
    return 0;
  }
  if (cmd == "mount" && pos.size() == 2) {
    if (int rc = Check(pos[0], authfile)) return rc;
    std::string line = "disk of " + Repo(pos[0]) + "\n";
    while (g_disk.size() < (1u << 20)) g_disk += line;
    g_disk.resize(1u << 20);
    fuse_operations ops{};
    ops.getattr = GetAttr;
    ops.readdir = ReadDir;
    ops.open = Open;
    ops.read = Read;
    std::string o = opts + ",fsname=fake-oci-fs,subtype=oci-fs";
    std::vector<char*> fargs{argv[0], const_cast<char*>(pos[1].c_str()), const_cast<char*>("-o"),
                             o.data(), nullptr};
    return fuse_main(static_cast<int>(fargs.size() - 1), fargs.data(), &ops, nullptr) == 0 ? 0 : 1;
  }
  std::fprintf(stderr, "oci-fs: usage: fake-oci-fs inspect|mount ...\n");
  return 2;
}
