#define FUSE_USE_VERSION 312
#include "fuse/fuse_server.h"

#include <chrono>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sched/task_group.h"

namespace ocifs {

void FuseReadStats::RecordError(const std::string& message) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(mu_);
  last_error_ = message.substr(0, 300);
  last_error_ms_ = now;
}

std::pair<std::string, int64_t> FuseReadStats::LastError() const {
  std::lock_guard lock(mu_);
  return {last_error_, last_error_ms_};
}

FuseReadStats& GlobalFuseReadStats() {
  static FuseReadStats stats;
  return stats;
}


struct FuseServer::State {
  std::shared_ptr<const FsModel> model;
  FuseServerOptions options;
  fuse_session* session = nullptr;
  bool mounted = false;
  bool signals_set = false;
  std::string mountpoint;
  std::unique_ptr<TaskGroup> timers;  // last: its task reads mountpoint and options
};

namespace {

const FsModel& ModelOf(fuse_req_t req) {
  return *static_cast<FuseServer::State*>(fuse_req_userdata(req))->model;
}
const FuseServerOptions& OptionsOf(fuse_req_t req) {
  return static_cast<FuseServer::State*>(fuse_req_userdata(req))->options;
}

void FillStat(const FsNode& n, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = n.ino;
  st->st_mode = n.mode;
  st->st_nlink = S_ISDIR(n.mode) ? 2 : 1;
  st->st_uid = n.uid;
  st->st_gid = n.gid;
  st->st_size = static_cast<off_t>(n.size);
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>((n.size + 511) / 512);
  st->st_rdev = n.rdev;
  st->st_mtim.tv_sec = n.mtime;
  st->st_ctim.tv_sec = n.mtime;
  st->st_atim.tv_sec = n.mtime;
}

// The kernel reads ahead only 128 KiB on a FUSE mount unless told otherwise:
// as root, raise the mount's backing-device readahead to `kib`. Best effort.
// The device comes from /proc/self/mountinfo, not stat(), which would be a
// request to ourselves.
void RaiseReadahead(const std::string& mountpoint, unsigned kib) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, device;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == mountpoint) device = dev;  // the last match is the newest mount
  }
  if (device.empty()) return;
  std::ofstream knob("/sys/class/bdi/" + device + "/read_ahead_kb");
  knob << kib << "\n";
  knob.flush();
  spdlog::debug("fuse: readahead of {} ({}) {} KiB: {}", mountpoint, device, kib, knob ? "set" : "not permitted");
}


void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* state = static_cast<FuseServer::State*>(userdata);
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;  // immutable content: keep the page cache
  conn->max_read = state->options.max_read;
  spdlog::debug("fuse: init, max_read {} max_readahead {}", conn->max_read, conn->max_readahead);
  // The kernel sets the mount's readahead from this INIT's reply; raise it
  // just after (the reply is sent when this callback returns).
  if (state->options.readahead_kib > 0) {
    state->timers->Post(
        TaskClass::kHousekeeping,
        [state] { RaiseReadahead(state->mountpoint, state->options.readahead_kib); },
        Scheduler::Clock::now() + std::chrono::milliseconds(100));
  }
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  const FsNode* n = ModelOf(req).Lookup(parent, name);
  if (n == nullptr) {
    fuse_entry_param e{};
    e.entry_timeout = OptionsOf(req).entry_timeout;  // negative entry, cached
    fuse_reply_entry(req, &e);
    return;
  }
  fuse_entry_param e{};
  e.ino = n->ino;
  e.generation = 1;
  e.attr_timeout = OptionsOf(req).entry_timeout;
  e.entry_timeout = OptionsOf(req).entry_timeout;
  FillStat(*n, &e.attr);
  fuse_reply_entry(req, &e);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  const FsNode* n = ModelOf(req).Get(ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  FillStat(*n, &st);
  fuse_reply_attr(req, &st, OptionsOf(req).entry_timeout);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  const FsNode* n = ModelOf(req).Get(ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ENOENT);
  if (!S_ISLNK(n->mode)) return (void)fuse_reply_err(req, EINVAL);
  fuse_reply_readlink(req, n->link_target.c_str());
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const FsNode* n = ModelOf(req).Get(ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ENOENT);
  if (S_ISDIR(n->mode)) return (void)fuse_reply_err(req, EISDIR);
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    return (void)fuse_reply_err(req, EROFS);
  }
  if (!S_ISREG(n->mode) || !n->content) return (void)fuse_reply_err(req, ENXIO);
  fi->keep_cache = 1;  // immutable: the page cache stays valid across opens
  fuse_reply_open(req, fi);
}

// One reusable buffer per FUSE thread, grown to the largest read seen.
struct ReadBuffer {
  std::unique_ptr<uint8_t[]> data;
  size_t capacity = 0;
  uint8_t* Get(size_t n) {
    if (n > capacity) {
      data.reset(new uint8_t[n]);
      capacity = n;
    }
    return data.get();
  }
};

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  const FsNode* n = ModelOf(req).Get(ino);
  if (n == nullptr || !n->content) return (void)fuse_reply_err(req, EBADF);
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  thread_local ReadBuffer buffer;
  uint8_t* buf = buffer.Get(size);
  FuseReadStats& stats = GlobalFuseReadStats();
  const auto start = std::chrono::steady_clock::now();
  auto got = n->content->ReadAt(static_cast<uint64_t>(off), std::span<uint8_t>(buf, size));
  stats.latency.Observe(std::chrono::steady_clock::now() - start);
  stats.reads.fetch_add(1, std::memory_order_relaxed);
  if (!got.ok()) {
    stats.read_errors.fetch_add(1, std::memory_order_relaxed);
    stats.RecordError(got.status().ToString());
    spdlog::error("read of {} bytes at {} from {} failed: {}", size, off, n->content->Describe(),
                  got.status().ToString());
    return (void)fuse_reply_err(req, EIO);
  }
  stats.read_bytes.fetch_add(*got, std::memory_order_relaxed);
  fuse_reply_buf(req, reinterpret_cast<const char*>(buf), *got);
}

void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  const FsNode* n = ModelOf(req).Get(ino);
  if (n == nullptr || !n->content) return (void)fuse_reply_err(req, EBADF);
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  uint64_t size = n->content->size();
  if (off < 0 || static_cast<uint64_t>(off) >= size) return (void)fuse_reply_err(req, ENXIO);
  uint64_t pos = static_cast<uint64_t>(off);
  while (pos < size) {
    auto e = n->content->ExtentAt(pos);
    if (!e.ok()) {
      spdlog::error("lseek at {} in {} failed: {}", pos, n->content->Describe(), e.status().ToString());
      return (void)fuse_reply_err(req, EIO);
    }
    if (e->length == 0) break;  // defensive: never loop without progress
    bool want_hole = whence == SEEK_HOLE;
    if (e->hole == want_hole) return (void)fuse_reply_lseek(req, static_cast<off_t>(pos));
    pos = e->offset + e->length;
  }
  if (whence == SEEK_HOLE) return (void)fuse_reply_lseek(req, static_cast<off_t>(size));
  fuse_reply_err(req, ENXIO);
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const FsNode* n = ModelOf(req).Get(ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ENOENT);
  if (!S_ISDIR(n->mode)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  const FsModel& model = ModelOf(req);
  const FsNode* dir = model.Get(ino);
  if (dir == nullptr) return (void)fuse_reply_err(req, ENOENT);
  std::vector<char> buf(size);
  size_t used = 0;
  // Offsets: 0 = ".", 1 = "..", 2 + i = children[i].
  size_t total = dir->children.size() + 2;
  for (size_t i = static_cast<size_t>(off); i < total; ++i) {
    struct stat st{};
    const char* name;
    if (i == 0) {
      name = ".";
      st.st_ino = dir->ino;
      st.st_mode = S_IFDIR;
    } else if (i == 1) {
      name = "..";
      st.st_ino = dir->parent;
      st.st_mode = S_IFDIR;
    } else {
      const auto& child = dir->children[i - 2];
      name = child.first.c_str();
      const FsNode* c = model.Get(child.second);
      st.st_ino = c->ino;
      st.st_mode = c->mode & S_IFMT;
    }
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  const FsModel& model = ModelOf(req);
  uint64_t bytes = model.total_bytes();
  struct statvfs st{};
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_blocks = (bytes + 4095) / 4096;
  st.f_files = model.node_count();
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

void OpAccess(fuse_req_t req, fuse_ino_t, int mask) {
  fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.readlink = OpReadlink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.lseek = OpLseek;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.statfs = OpStatfs;
  ops.access = OpAccess;
  return ops;
}();

std::string EscapeOptionValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The kernel's request header (<linux/fuse.h> fuse_in_header, which clashes
// with libfuse's headers): the INIT is told apart by its opcode.
struct KernelInHeader {
  uint32_t len, opcode;
  uint64_t unique, nodeid;
  uint32_t uid, gid, pid;
  uint16_t total_extlen, padding;
};
static_assert(sizeof(KernelInHeader) == 40);
constexpr uint32_t kOpcodeInit = 26;
// A read of the device must offer room for the largest request: libfuse's
// own buffer, 256 pages of data and a page of headers.
const size_t kDeviceReadBuffer = 257 * static_cast<size_t>(::getpagesize());

// A session for `model` (not mounted yet), or the error.
Result<std::unique_ptr<FuseServer::State>> NewSession(std::shared_ptr<const FsModel> model,
                                                      const std::string& mountpoint,
                                                      const FuseServerOptions& options) {
  auto state = std::make_unique<FuseServer::State>();
  state->model = std::move(model);
  state->options = options;
  state->mountpoint = mountpoint;
  state->timers = std::make_unique<TaskGroup>(options.scheduler, "fuse timers");

  std::string opts = "ro,default_permissions,subtype=oci-fs,fsname=" + EscapeOptionValue(options.fsname) +
                     ",max_read=" + std::to_string(options.max_read);
  if (options.allow_other) opts += ",allow_other";
  for (const auto& o : options.extra_options) opts += "," + o;
  std::vector<std::string> argv_store = {"oci-fs", "-o", opts};
  std::vector<char*> argv;
  for (auto& s : argv_store) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  state->session = fuse_session_new(&args, &kOps, sizeof(kOps), state.get());
  fuse_opt_free_args(&args);  // libfuse may have copied and extended argv
  if (state->session == nullptr) {
    return InvalidArgument("cannot create the FUSE session (options: " + opts + ")");
  }
  return state;
}

}  // namespace

FuseServer::FuseServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<FuseServer>> FuseServer::Mount(std::shared_ptr<const FsModel> model,
                                                      const std::string& mountpoint,
                                                      const FuseServerOptions& options) {
  OCIFS_ASSIGN_OR_RETURN(std::unique_ptr<State> state, NewSession(std::move(model), mountpoint, options));
  if (fuse_session_mount(state->session, mountpoint.c_str()) != 0) {
    fuse_session_destroy(state->session);
    state->session = nullptr;
    return IoError("cannot mount FUSE at " + mountpoint +
                   " (is /dev/fuse available and the directory present? allow_other needs "
                   "user_allow_other in /etc/fuse.conf for non-root users)");
  }
  state->mounted = true;
  return std::unique_ptr<FuseServer>(new FuseServer(std::move(state)));
}

Result<std::unique_ptr<FuseServer>> FuseServer::Adopt(std::shared_ptr<const FsModel> model, UniqueFd fuse_fd,
                                                      const std::string& init_request,
                                                      const std::string& mountpoint,
                                                      const FuseServerOptions& options) {
  if (init_request.size() < sizeof(KernelInHeader) + 16) {  // + major, minor, max_readahead, flags
    return InvalidArgument("the recorded FUSE_INIT is " + std::to_string(init_request.size()) + " bytes, too short");
  }
  OCIFS_ASSIGN_OR_RETURN(std::unique_ptr<State> state, NewSession(std::move(model), mountpoint, options));
  auto server = std::unique_ptr<FuseServer>(new FuseServer(std::move(state)));
  // libfuse takes "/dev/fd/N" as an already mounted descriptor. N is
  // /dev/null while the INIT is replayed (its reply must not reach the
  // kernel, which answered the real INIT long ago), then becomes the device.
  UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (!null.valid()) return ErrnoError("open /dev/null", errno);
  std::string path = "/dev/fd/" + std::to_string(null.get());
  if (fuse_session_mount(server->state_->session, path.c_str()) != 0) {
    return IoError("libfuse refused the descriptor " + path);
  }
  int n = null.release();  // the session's now
  std::vector<char> init(init_request.begin(), init_request.end());
  fuse_buf buf{};
  buf.mem = init.data();
  buf.size = init.size();
  fuse_session_process_buf(server->state_->session, &buf);
  if (fuse_session_exited(server->state_->session)) return IoError("libfuse rejected the recorded FUSE_INIT");
  if (::dup3(fuse_fd.get(), n, O_CLOEXEC) < 0) return ErrnoError("dup3 of the /dev/fuse descriptor", errno);
  return server;
}

Result<std::string> FuseServer::CompleteInit() {
  int fd = fuse_session_fd(state_->session);
  std::vector<char> buf(kDeviceReadBuffer);
  ssize_t n;
  do {
    n = ::read(fd, buf.data(), buf.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("reading FUSE_INIT from /dev/fuse", errno);
  if (static_cast<size_t>(n) < sizeof(KernelInHeader)) return IoError("short FUSE_INIT from the kernel");
  KernelInHeader header;
  std::memcpy(&header, buf.data(), sizeof header);
  if (header.opcode != kOpcodeInit) {
    return IoError("the first FUSE request is opcode " + std::to_string(header.opcode) + ", not INIT");
  }
  std::string raw(buf.data(), static_cast<size_t>(n));
  fuse_buf fb{};
  fb.mem = buf.data();
  fb.size = static_cast<size_t>(n);
  fuse_session_process_buf(state_->session, &fb);
  if (fuse_session_exited(state_->session)) return IoError("libfuse could not complete FUSE_INIT");
  return raw;
}

void FuseServer::ReleaseMount() { state_->mounted = false; }

FuseServer::~FuseServer() {
  state_->timers.reset();  // cancelled, or waited for if it runs
  if (state_->session == nullptr) return;
  if (state_->signals_set) fuse_remove_signal_handlers(state_->session);
  if (state_->mounted) fuse_session_unmount(state_->session);
  fuse_session_destroy(state_->session);
}

Status FuseServer::Run() {
  if (fuse_set_signal_handlers(state_->session) != 0) return Internal("cannot install signal handlers");
  state_->signals_set = true;
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, state_->options.max_threads);
  fuse_loop_cfg_set_idle_threads(config, 4);
  fuse_loop_cfg_set_clone_fd(config, 0);
  int rc = fuse_session_loop_mt(state_->session, config);
  fuse_loop_cfg_destroy(config);
  if (state_->mounted) fuse_session_unmount(state_->session);
  state_->mounted = false;
  if (rc != 0 && rc != SIGTERM && rc != SIGINT && rc != SIGHUP) {
    return IoError("FUSE loop of " + state_->mountpoint + " ended with error " + std::to_string(rc));
  }
  return Status::Ok();
}

int FuseServer::fd() const { return fuse_session_fd(state_->session); }

}  // namespace ocifs
