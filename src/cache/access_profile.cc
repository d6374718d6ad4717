#include "cache/access_profile.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <charconv>
#include <fstream>
#include <sstream>

#include "base/whole_file.h"
#include "cache/cache_key.h"

namespace ocifs {
namespace {

constexpr std::string_view kMagic = "oci-fs-profile 1";
constexpr uint64_t kMaxChunks = 1ull << 24;  // a bound on what a file may make us hold

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Splits "word rest" at the first space.
std::pair<std::string_view, std::string_view> Split(std::string_view line) {
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return {line, {}};
  return {line.substr(0, sp), line.substr(sp + 1)};
}

}  // namespace

const std::vector<uint64_t>& AccessProfile::ChunksOf(std::string_view key) const {
  static const std::vector<uint64_t> kNone;
  auto it = blobs.find(key);
  return it == blobs.end() ? kNone : it->second;
}

std::vector<uint64_t> AccessProfile::ChunksOf(std::string_view key, uint32_t size, uint64_t limit,
                                              uint64_t* past_end) const {
  std::vector<uint64_t> out;
  if (past_end) *past_end = 0;
  if (size == 0 || chunk_size == 0) return out;
  // chunk c of the profile is chunks [c * num / den, (c + 1) * num / den) of `size`.
  const uint64_t num = size < chunk_size ? chunk_size / size : 1;
  const uint64_t den = size > chunk_size ? size / chunk_size : 1;
  const std::vector<uint64_t>& listed = ChunksOf(key);
  tsl::robin_set<uint64_t> seen;
  seen.reserve(std::min<uint64_t>(listed.size() * num, limit));
  out.reserve(std::min<uint64_t>(listed.size() * num, limit));
  for (uint64_t c : listed) {
    const uint64_t first = c / den;
    if (limit == 0 || first > (limit - 1) / num) {  // first * num >= limit, without overflow
      if (past_end) ++*past_end;
      continue;
    }
    for (uint64_t i = first * num; i < std::min(limit, (first + 1) * num); ++i) {
      if (seen.insert(i).second) out.push_back(i);
    }
  }
  return out;
}

uint64_t AccessProfile::ChunkCount() const {
  uint64_t n = 0;
  for (const auto& [key, chunks] : blobs) n += chunks.size();
  return n;
}

Result<AccessProfile> LoadAccessProfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return NotFound("profile " + path + " does not exist");
    return ErrnoError("open profile " + path, errno);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return ErrnoError("read profile " + path, errno);
  return ParseAccessProfile(text.str(), path);
}

Result<AccessProfile> ParseAccessProfile(const std::string& text, const std::string& name) {
  const std::string& path = name;
  std::istringstream in(text);
  AccessProfile profile;
  std::vector<uint64_t>* blob = nullptr;
  uint64_t declared = 0, total = 0;
  std::string key;
  bool magic = false;
  size_t lineno = 0;
  auto bad = [&](const std::string& what) {
    return Corrupt("profile " + path + " line " + std::to_string(lineno) + ": " + what);
  };
  auto end_blob = [&]() -> Status {
    if (blob && blob->size() != declared) {
      return bad("blob " + key + " declares " + std::to_string(declared) + " chunks but lists " +
                 std::to_string(blob->size()) + " (truncated?)");
    }
    return Status::Ok();
  };
  std::string line;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    if (!magic) {
      if (line != kMagic) return bad("not an oci-fs profile (expected \"" + std::string(kMagic) + "\")");
      magic = true;
      continue;
    }
    auto [word, rest] = Split(line);
    if (word == "chunk-size") {
      uint64_t v = 0;
      if (!ParseU64(rest, &v) || v < 4096 || v > (1u << 30) || (v & (v - 1)) != 0) {
        return bad("chunk-size must be a power of two from 4096");
      }
      profile.chunk_size = static_cast<uint32_t>(v);
    } else if (word == "blob") {
      OCIFS_RETURN_IF_ERROR(end_blob());
      auto [k, count] = Split(rest);
      if (!ValidateCacheKey(k).ok()) return bad("blob key \"" + std::string(k) + "\" is not a digest");
      if (!ParseU64(count, &declared) || declared > kMaxChunks) return bad("blob " + std::string(k) + ": bad chunk count");
      if (profile.blobs.contains(k)) return bad("blob " + std::string(k) + " listed twice");
      key = std::string(k);
      blob = &profile.blobs[key];
    } else {
      if (!blob) return bad("chunk range before any \"blob\" line");
      if (profile.chunk_size == 0) return bad("chunk range before \"chunk-size\"");
      size_t dash = line.find('-');
      uint64_t first = 0, last = 0;
      bool ok = dash == std::string::npos
                    ? ParseU64(line, &first) && (last = first, true)
                    : ParseU64(std::string_view(line).substr(0, dash), &first) &&
                          ParseU64(std::string_view(line).substr(dash + 1), &last);
      if (!ok || last < first) return bad("\"" + line + "\" is not a chunk or a range FIRST-LAST");
      // last - first, not + 1: a range of all 2^64 chunks must not wrap to 0.
      if (last - first >= declared - blob->size()) return bad("more chunks than blob " + key + " declares");
      total += last - first + 1;
      if (total > kMaxChunks) return bad("more than " + std::to_string(kMaxChunks) + " chunks");
      for (uint64_t n = 0; n <= last - first; ++n) blob->push_back(first + n);
    }
  }
  if (!magic) return Corrupt("profile " + path + " is empty");
  OCIFS_RETURN_IF_ERROR(end_blob());
  if (profile.chunk_size == 0) return Corrupt("profile " + path + " has no chunk-size line");
  return profile;
}

Status SaveAccessProfile(const std::string& path, const AccessProfile& profile) {
  return WriteFileAtomically(path, FormatAccessProfile(profile));
}

std::string FormatAccessProfile(const AccessProfile& profile) {
  std::ostringstream out;
  out << "# which chunks of which blobs a mount read, first read first (docs/profile-format.md)\n"
      << kMagic << "\nchunk-size " << profile.chunk_size << "\n";
  for (const auto& [key, chunks] : profile.blobs) {
    out << "blob " << key << " " << chunks.size() << "\n";
    for (size_t i = 0; i < chunks.size();) {
      size_t j = i;
      while (j + 1 < chunks.size() && chunks[j + 1] == chunks[j] + 1) ++j;
      out << chunks[i];
      if (j > i) out << "-" << chunks[j];
      out << "\n";
      i = j + 1;
    }
  }
  return out.str();
}

void AccessRecorder::Touch(std::string_view key, uint64_t offset, uint64_t length) { Add(key, offset, length, false); }

void AccessRecorder::TouchNeeded(std::string_view key, uint64_t offset, uint64_t length) {
  Add(key, offset, length, true);
}

void AccessRecorder::Add(std::string_view key, uint64_t offset, uint64_t length, bool needed) {
  std::lock_guard lock(mu_);
  auto it = blobs_.find(key);
  if (it == blobs_.end()) it = blobs_.emplace(std::string(key), Blob{}).first;
  Blob& blob = it->second;
  if (needed) blob.needed_only = true;
  if (blob.excluded || length == 0 || (blob.needed_only && !needed)) return;
  const uint64_t first = offset / unit_, last = (offset + length - 1) / unit_;
  for (uint64_t i = first; i <= last && total_ < max_units_; ++i) {
    if (blob.seen.insert(i).second) {
      blob.order.push_back(i);
      ++total_;
    }
  }
}

void AccessRecorder::Exclude(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = blobs_.find(key);
  if (it == blobs_.end()) it = blobs_.emplace(std::string(key), Blob{}).first;
  total_ -= it->second.order.size();
  it->second = Blob{};
  it->second.excluded = true;
}

AccessProfile AccessRecorder::Snapshot() const {
  AccessProfile profile;
  profile.chunk_size = unit_;
  std::lock_guard lock(mu_);
  for (const auto& [key, blob] : blobs_) {
    if (!blob.excluded && !blob.order.empty()) profile.blobs[key] = blob.order;
  }
  return profile;
}

}  // namespace ocifs
