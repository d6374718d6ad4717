#include "image/bare_disk.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace ocifs {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string ShortDigest(std::string_view digest) {
  size_t colon = digest.find(':');
  std::string_view hex = colon == std::string_view::npos ? digest : digest.substr(colon + 1);
  return std::string(hex.substr(0, 12));
}

// A name that is one path element: no '/', '\\', NUL, "..", nor only dots.
bool PlainFileName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  if (name.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos) return false;
  if (name.find("..") != std::string_view::npos) return false;
  return name.find_first_not_of('.') != std::string_view::npos;
}

// The compression extension at the end of `lower`, removed from it.
std::optional<Compression> StripCompression(std::string& lower) {
  for (auto [ext, c] : {std::pair{".zst", Compression::kZstd}, std::pair{".zstd", Compression::kZstd},
                        std::pair{".gz", Compression::kGzip}, std::pair{".gzip", Compression::kGzip}}) {
    if (EndsWith(lower, ext)) {
      lower.resize(lower.size() - std::string_view(ext).size());
      return c;
    }
  }
  return std::nullopt;
}

// Whether `title` names a disk file; `stem` gets its name without extensions.
bool DiskTitle(std::string_view title, std::optional<Compression>* compression, std::string* stem) {
  std::string lower = Lower(title);
  *compression = StripCompression(lower);
  for (std::string_view ext : {".raw", ".img", ".qcow2", ".iso"}) {
    if (EndsWith(lower, ext) && lower.size() > ext.size()) {
      *stem = std::string(title.substr(0, lower.size() - ext.size()));
      return true;
    }
  }
  return false;
}

bool DiskMediaType(std::string_view mt) {
  if (mt.starts_with("application/vnd.kubevirt.disk.") || mt.starts_with("application/vnd.lfedge.disk.")) return true;
  std::string_view last = mt.substr(mt.rfind('/') == std::string_view::npos ? 0 : mt.rfind('/') + 1);
  return last.starts_with("disk.") || last.find(".disk.") != std::string_view::npos;
}

}  // namespace

Result<uint64_t> ParseQuantity(std::string_view text) {
  const std::string shown = std::string("'").append(text.substr(0, 64)).append("'");
  size_t i = 0;
  unsigned __int128 mantissa = 0, scale = 1;
  size_t digits = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++digits) {
    mantissa = mantissa * 10 + static_cast<unsigned>(text[i] - '0');
    if (mantissa > (unsigned __int128){1} << 80) return InvalidArgument("quantity " + shown + " is too large");
  }
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++digits) {
      if (scale > 1'000'000'000'000ull) return InvalidArgument("quantity " + shown + " has too many decimals");
      mantissa = mantissa * 10 + static_cast<unsigned>(text[i] - '0');
      scale *= 10;
    }
  }
  if (digits == 0) return InvalidArgument("not a quantity: " + shown);
  std::string_view suffix = text.substr(i);
  unsigned __int128 mult = 1;
  static constexpr std::array<std::string_view, 6> kBinary = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  static constexpr std::array<std::string_view, 6> kDecimal = {"k", "M", "G", "T", "P", "E"};
  bool known = suffix.empty();
  for (size_t k = 0; k < kBinary.size() && !known; ++k) {
    if (suffix == kBinary[k]) mult = (unsigned __int128){1} << (10 * (k + 1)), known = true;
    if (suffix == kDecimal[k]) {
      for (size_t p = 0; p <= k; ++p) mult *= 1000;
      known = true;
    }
  }
  if (!known) return InvalidArgument("quantity " + shown + " has an unknown suffix (use Ki, Mi, Gi, Ti or k, M, G, T)");
  unsigned __int128 total = mantissa * mult;
  if (total % scale != 0) return InvalidArgument("quantity " + shown + " is not a whole number of bytes");
  total /= scale;
  if (total > (unsigned __int128){1} << 62) return InvalidArgument("quantity " + shown + " is too large");
  return static_cast<uint64_t>(total);
}

Result<std::optional<BareDiskLayer>> ClassifyLayer(const Descriptor& layer, size_t index) {
  const std::string what = "layer " + std::to_string(index) + " (" + layer.digest + ")";
  auto annotation = [&](std::string_view key) -> const std::string* {
    auto it = layer.annotations.find(std::string(key));
    return it == layer.annotations.end() ? nullptr : &it->second;
  };
  BareDiskLayer disk;
  disk.layer = index;
  disk.digest = layer.digest;
  disk.media_type = layer.media_type;
  std::optional<Compression> from_title;
  std::string stem;
  bool by_title = false;
  if (const std::string* title = annotation(bare_disk::kTitleAnnotation)) {
    disk.title = *title;
    by_title = DiskTitle(*title, &from_title, &stem);
  }
  const bool by_type = DiskMediaType(layer.media_type);
  if (!by_type && !by_title) return std::optional<BareDiskLayer>();
  if (!disk.title.empty() && !PlainFileName(disk.title)) {
    return Corrupt(what + ": its title '" + disk.title.substr(0, 200) + "' is not a plain file name (no '/' or '..')");
  }
  disk.reason = by_type ? "media type " + layer.media_type : "title " + disk.title;

  const std::string mt = Lower(layer.media_type);
  if (EndsWith(mt, "+zstd")) {
    disk.compression = Compression::kZstd;
  } else if (EndsWith(mt, "+gzip")) {
    disk.compression = Compression::kGzip;
  } else if (size_t plus = mt.rfind('+'); plus != std::string::npos && mt.find('/') < plus &&
             !EndsWith(mt, "+raw") && !EndsWith(mt, "+qcow2") && !EndsWith(mt, "+octet-stream")) {
    return Unsupported(what + ": media type " + layer.media_type + " names a compression oci-fs does not read");
  } else {
    disk.compression = from_title.value_or(Compression::kNone);
  }
  if (const std::string* name = annotation(bare_disk::kNameAnnotation)) {
    if (!PlainFileName(*name)) {
      return Corrupt(what + ": its " + std::string(bare_disk::kNameAnnotation) + " '" + name->substr(0, 200) +
                     "' is not a plain name (no '/' or '..')");
    }
    disk.name = *name;
  } else if (!stem.empty()) {
    disk.name = stem;
  } else {
    disk.name = "disk-" + ShortDigest(layer.digest);
  }
  if (const std::string* size = annotation(bare_disk::kSizeAnnotation)) {
    auto bytes = ParseQuantity(*size);
    if (!bytes.ok()) return Corrupt(what + ": " + std::string(bare_disk::kSizeAnnotation) + ": " + bytes.status().message());
    disk.declared_size = *bytes;
  }
  return std::optional<BareDiskLayer>(std::move(disk));
}

bool IsTarHeader(std::span<const uint8_t> head) {
  if (head.size() < 512) return false;
  if (std::memcmp(head.data() + 257, "ustar", 5) == 0) return true;
  // v7: the checksum field (octal, at 148, 8 bytes) is the sum of the block with the field as spaces.
  uint64_t stored = 0;
  bool any = false;
  for (size_t i = 148; i < 156; ++i) {
    uint8_t c = head[i];
    if (c >= '0' && c <= '7') {
      stored = stored * 8 + (c - '0');
      any = true;
    } else if (c != ' ' && c != 0) {
      return false;
    }
  }
  if (!any) return false;
  uint64_t sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : head[i];
  return sum == stored;
}

bool LooksLikeBareQcow2(std::span<const uint8_t> head) {
  return head.size() >= 4 && std::memcmp(head.data(), "QFI\xfb", 4) == 0 && !IsTarHeader(head);
}

bool IsArtifactFile(const Descriptor& layer, std::span<const uint8_t> head) {
  auto title = layer.annotations.find(std::string(bare_disk::kTitleAnnotation));
  if (title == layer.annotations.end() || title->second.empty()) return false;
  if (auto unpack = layer.annotations.find(std::string(bare_disk::kOrasUnpackAnnotation));
      unpack != layer.annotations.end() && Lower(unpack->second) == "true") {
    return false;
  }
  if (IsTarHeader(head)) return false;
  const bool zero_block = head.size() >= 512 && std::all_of(head.begin(), head.begin() + 512,
                                                            [](uint8_t b) { return b == 0; });
  return !zero_block;
}

Status CheckDiskNames(const std::vector<BareDiskLayer>& disks) {
  for (size_t i = 0; i < disks.size(); ++i) {
    for (size_t j = i + 1; j < disks.size(); ++j) {
      if (disks[i].name == disks[j].name) {
        return Corrupt("two disks are named '" + disks[i].name + "': layer " + std::to_string(disks[i].layer) +
                       " (" + disks[i].digest + ") and layer " + std::to_string(disks[j].layer) + " (" +
                       disks[j].digest + ")");
      }
    }
  }
  return Status::Ok();
}

Result<const BareDiskLayer*> PickDisk(const std::vector<BareDiskLayer>& disks, std::string_view wanted) {
  std::string list;
  for (const BareDiskLayer& d : disks) list += (list.empty() ? "" : ", ") + d.name;
  if (disks.empty()) return NotFound("the image has no bare disk layers");
  if (wanted.empty()) {
    if (disks.size() == 1) return &disks.front();
    return InvalidArgument("the artifact has " + std::to_string(disks.size()) + " disks (" + list +
                           "): pick one with --disk NAME");
  }
  for (const BareDiskLayer& d : disks) {
    if (d.name == wanted) return &d;
  }
  for (const BareDiskLayer& d : disks) {
    if (!d.title.empty() && d.title == wanted) return &d;
  }
  return NotFound("--disk " + std::string(wanted.substr(0, 200)) + ": no such disk; the artifact has " + list);
}

}  // namespace ocifs
