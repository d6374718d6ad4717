#include "cli/image_commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include <spdlog/spdlog.h>

#include "accel/accel_loader.h"
#include "cli/progress_printer.h"
#include "decode/compression.h"
#include "decode/estargz_toc.h"
#include "decode/zstd_chunked_toc.h"
#include "disk/disk_format.h"
#include "stack/image_stack.h"

namespace ocifs {
namespace {

// `configure_logging`: false when the caller configured it already (it can be done once).
Result<std::unique_ptr<ImageStack>> OpenStack(const ImageCommandFlags& flags, bool configure_logging = true) {
  if (configure_logging) OCIFS_RETURN_IF_ERROR(ConfigureLogging(flags.common));
  OCIFS_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(flags.reference));
  StackOptions options;
  OCIFS_ASSIGN_OR_RETURN(options.registry, ToRegistryOptions(flags.common));
  options.cache_dir = flags.cache_dir;
  return ImageStack::Open(ref, options);
}

nlohmann::json AccelJson(const FoundAccel& a) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& g : a.manifest.layer_indexes) {
    layers.push_back({{"layer", g.layer_digest}, {"kind", std::string(LayerIndexName(g.kind))},
                      {"mediaType", std::string(LayerIndexMediaType(g.kind))}, {"digest", g.blob.digest},
                      {"size", g.blob.size}});
  }
  nlohmann::json tar_indexes = nlohmann::json::array();
  for (const auto& t : a.manifest.tar_indexes) {
    tar_indexes.push_back({{"layer", t.layer_digest}, {"digest", t.blob.digest}, {"size", t.blob.size}});
  }
  nlohmann::json raw_spans = nlohmann::json::array();
  for (const auto& r : a.manifest.raw_spans) {
    raw_spans.push_back({{"layer", r.layer_digest}, {"digest", r.blob.digest}, {"size", r.blob.size}});
  }
  nlohmann::json profiles = nlohmann::json::array();
  for (const auto& p : a.manifest.profiles) profiles.push_back({{"digest", p.digest}, {"size", p.size}});
  return {{"reference", a.reference}, {"created", a.manifest.created}, {"indexes", layers},
          {"tar_indexes", tar_indexes}, {"raw_span_tables", raw_spans}, {"profiles", profiles}};
}

std::string CompressionOf(const Descriptor& layer) {
  return std::string(LayerCompressionName(CompressionOfMediaType(layer.media_type)));
}

// A gzip layer with an eStargz TOC digest annotation (docs/estargz.md).
bool IsEstargz(const Descriptor& layer) {
  return CompressionOf(layer) == "gzip" && EstargzTocDigest(layer.annotations).has_value();
}

// What inspect and ls tell of a bare disk layer: its format and the size the
// guest sees, as far as they are known without reading its whole stream.
struct DiskFacts {
  std::string format = "unknown";
  std::optional<uint64_t> size;  // nullopt: known only at the end of its stream
};

DiskFacts FactsOf(const ImageStack& stack, const BareDiskLayer& disk) {
  DiskFacts facts;
  const ByteSourcePtr& decoded = stack.layers()[disk.layer].decoded;
  auto format = DetectDiskFormat(*decoded, /*check_trailer=*/false);
  if (!format.ok()) {
    spdlog::warn("disk {}: {}", disk.name, format.status().ToString());
    return facts;
  }
  facts.format = std::string(DiskFormatName(*format));
  auto view = *format == DiskFormat::kQcow2 ? stack.OpenBareDisk(disk) : stack.BareDiskFile(disk, false);
  if (!view.ok()) {
    spdlog::warn("disk {}: {}", disk.name, view.status().ToString());
  } else if ((*view)->size() != ByteSource::kUnknownSize) {
    facts.size = (*view)->size();
  }
  return facts;
}

// The bare disk `path` names: its name, NAME.img or its title; null if none.
const BareDiskLayer* FindDisk(const ImageStack& stack, std::string_view path) {
  for (const BareDiskLayer& d : stack.disks()) {
    if (path == d.name || path == d.name + ".img" || (!d.title.empty() && path == d.title)) return &d;
  }
  return nullptr;
}

// Whether the manifest has a layer its descriptor calls a disk (inspect then opens the layers).
bool HasDiskLayers(const ResolvedImage& image) {
  for (size_t i = 0; i < image.layers.size(); ++i) {
    auto disk = ClassifyLayer(image.layers[i], i);
    if (!disk.ok() || *disk) return true;  // a bad one is reported by the stack
  }
  return false;
}

// Whether a layer that no descriptor calls a disk is a qcow2 by its bytes
// (LooksLikeBareQcow2): one ranged read of the blob's head, decompressed as
// its magic says. A layer that cannot be read is no disk here (a mount says why).
bool QcowByItsBytes(ImageSource& source, const Descriptor& layer) {
  constexpr uint64_t kHeadBytes = 136u << 10;  // holds the first zstd block or deflate stored block
  auto blob = source.OpenBlob(layer);
  if (!blob.ok()) {
    spdlog::warn("layer {}: {}", layer.digest, blob.status().ToString());
    return false;
  }
  std::vector<uint8_t> head(static_cast<size_t>(std::min(kHeadBytes, layer.size)));
  auto n = (*blob)->ReadAt(0, head);
  if (!n.ok()) {
    spdlog::warn("layer {}: {}", layer.digest, n.status().ToString());
    return false;
  }
  head.resize(*n);
  auto first = DecompressHead(head, CompressionOfMagic(head), 512);
  return first.ok() && LooksLikeBareQcow2(*first);
}

Status RunInspect(const ImageCommandFlags& flags) {
  OCIFS_RETURN_IF_ERROR(ConfigureLogging(flags.common));
  OCIFS_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(flags.reference));
  OCIFS_ASSIGN_OR_RETURN(RegistryOptions options, ToRegistryOptions(flags.common));
  OCIFS_ASSIGN_OR_RETURN(auto source, OpenImageSource(ref, options));
  OCIFS_ASSIGN_OR_RETURN(ResolvedImage image, source->Resolve());
  // An artifact of disk layers: their names, formats and sizes need the layers' first bytes.
  std::unique_ptr<ImageStack> stack;
  bool bare = HasDiskLayers(image);
  // Only an artifact's layers are read for their bytes: a container image (an
  // image config) has tar layers, and inspect of a containerDisk, which every
  // CSI publish runs, fetches no layer bytes.
  const bool container_image = image.config.media_type == media_type::kOciConfig ||
                               image.config.media_type == media_type::kDockerConfig;
  for (size_t i = 0; i < image.layers.size() && !bare && !container_image; ++i) {
    bare = QcowByItsBytes(*source, image.layers[i]);
  }
  if (bare) {
    OCIFS_ASSIGN_OR_RETURN(stack, OpenStack(flags, /*configure_logging=*/false));
  }
  // An artifact that cannot be read is reported, not fatal: the image is.
  std::optional<FoundAccel> accel;
  if (auto found = FindAccel(*source, image); found.ok()) {
    accel = std::move(found).value();
  } else {
    spdlog::warn("cannot read the acceleration artifact: {}", found.status().ToString());
  }
  if (flags.json) {
    nlohmann::json j;
    j["reference"] = image.reference.ToString();
    j["digest"] = image.manifest_digest;
    j["mediaType"] = image.manifest_media_type;
    if (!image.artifact_type.empty()) j["artifactType"] = image.artifact_type;
    if (!image.index_digest.empty()) j["indexDigest"] = image.index_digest;
    j["platform"] = image.platform.ToString();
    j["config"] = {{"digest", image.config.digest}, {"size", image.config.size}};
    if (image.config.media_type == bare_disk::kKubevirtConfig) {
      j["vmConfig"] = {{"digest", image.config.digest}, {"mediaType", image.config.media_type}};
    }
    j["layers"] = nlohmann::json::array();
    for (const auto& layer : image.layers) {
      j["layers"].push_back({{"digest", layer.digest},
                             {"size", layer.size},
                             {"mediaType", layer.media_type},
                             {"compression", CompressionOf(layer)}});
      if (HasZstdChunkedToc(layer.annotations)) j["layers"].back()["toc"] = "zstd:chunked";
      if (IsEstargz(layer)) j["layers"].back()["toc"] = "estargz";
    }
    if (stack) {
      j["disks"] = nlohmann::json::array();
      for (const BareDiskLayer& d : stack->disks()) {
        DiskFacts facts = FactsOf(*stack, d);
        j["disks"].push_back({{"name", d.name}, {"title", d.title}, {"layer", d.digest},
                              {"compression", std::string(CompressionName(d.compression))}, {"format", facts.format},
                              {"size", facts.size ? nlohmann::json(*facts.size) : nlohmann::json(nullptr)}});
      }
      j["files"] = nlohmann::json::array();
      for (const ArtifactFile& f : stack->files()) {
        j["files"].push_back({{"title", f.title}, {"layer", f.digest}, {"mediaType", f.media_type}, {"size", f.size}});
      }
    }
    j["accel"] = accel ? AccelJson(*accel) : nlohmann::json(nullptr);
    std::cout << j.dump(2) << std::endl;
    return Status::Ok();
  }
  std::cout << "Reference: " << image.reference.ToString() << "\n"
            << "Digest: " << image.manifest_digest << "\n";
  if (!image.index_digest.empty()) std::cout << "IndexDigest: " << image.index_digest << "\n";
  if (!image.artifact_type.empty()) std::cout << "ArtifactType: " << image.artifact_type << "\n";
  std::cout << "MediaType: " << image.manifest_media_type << "\n"
            << "Platform: " << image.platform.ToString() << "\n"
            << "Config: " << image.config.digest << "\n"
            << "Layers:\n";
  for (const auto& layer : image.layers) {
    std::cout << "  " << layer.digest << " " << layer.size << " " << CompressionOf(layer)
              << (HasZstdChunkedToc(layer.annotations) ? " (zstd:chunked TOC)" : "")
              << (IsEstargz(layer) ? " (eStargz TOC)" : "") << "\n";
  }
  if (stack) {
    std::cout << "Disks:\n";
    for (const BareDiskLayer& d : stack->disks()) {
      DiskFacts facts = FactsOf(*stack, d);
      std::cout << "  " << d.name << " " << facts.format << " "
                << (facts.size ? std::to_string(*facts.size) : std::string("size-unknown")) << " "
                << CompressionName(d.compression) << " " << d.digest
                << (d.title.empty() ? "" : " (" + d.title + ")") << "\n";
    }
    if (!stack->files().empty()) std::cout << "Files:\n";
    for (const ArtifactFile& f : stack->files()) {
      std::cout << "  " << f.title << " " << f.size << " " << f.media_type << " " << f.digest << "\n";
    }
  }
  if (accel) {
    std::map<std::string_view, size_t> kinds;
    for (const auto& g : accel->manifest.layer_indexes) ++kinds[LayerIndexName(g.kind)];
    std::cout << "Accel: " << accel->reference << " (";
    for (const auto& [name, count] : kinds) {
      std::cout << count << " " << name << (count == 1 ? "" : name.ends_with('x') ? "es" : "s") << ", ";
    }
    if (const size_t tars = accel->manifest.tar_indexes.size(); tars != 0) {
      std::cout << tars << (tars == 1 ? " tar index, " : " tar indexes, ");
    }
    if (const size_t raws = accel->manifest.raw_spans.size(); raws != 0) {
      std::cout << raws << (raws == 1 ? " raw span table, " : " raw span tables, ");
    }
    std::cout << accel->manifest.profiles.size() << " profiles, created " << accel->manifest.created << ")\n";
  } else {
    std::cout << "Accel: none\n";
  }
  std::cout.flush();
  return Status::Ok();
}

std::string NormalizePath(std::string_view path) {
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    i = j + 1;
  }
  return out;
}

void PrintNode(const MergedTree& tree, const Node& node, bool recurse) {
  const TarEntry& e = node.entry;
  uint32_t type = 0;
  switch (e.type) {
    case EntryType::kFile: case EntryType::kHardlink: type = S_IFREG; break;
    case EntryType::kDirectory: type = S_IFDIR; break;
    case EntryType::kSymlink: type = S_IFLNK; break;
    case EntryType::kCharDevice: type = S_IFCHR; break;
    case EntryType::kBlockDevice: type = S_IFBLK; break;
    case EntryType::kFifo: type = S_IFIFO; break;
  }
  uint64_t size = e.type == EntryType::kSymlink ? e.link_target.size() : e.size;
  if (!e.path.empty()) {
    std::cout << ModeString(type | (e.mode & 07777)) << " " << size << " /" << e.path;
    if (e.type == EntryType::kSymlink) std::cout << " -> " << e.link_target;
    std::cout << "\n";
  }
  if (recurse && e.type == EntryType::kDirectory) {
    for (const Node* child : tree.Children(e.path)) PrintNode(tree, *child, true);
  }
}

Status RunLs(const ImageCommandFlags& flags) {
  OCIFS_ASSIGN_OR_RETURN(auto stack, OpenStack(flags));
  std::string path = NormalizePath(flags.path);
  if (const BareDiskLayer* disk = FindDisk(*stack, path); disk != nullptr && stack->tree().Lookup(path) == nullptr) {
    path.clear();  // a disk of the artifact: list the root, which shows it
  }
  const Node* node = stack->tree().Lookup(path);
  if (node == nullptr) return NotFound("/" + path + ": no such file or directory in the image");
  PrintNode(stack->tree(), *node, true);
  if (path.empty()) {
    // Bare disk layers, as `mount --mode tree` shows them (the size is the guest's).
    for (const BareDiskLayer& d : stack->disks()) {
      DiskFacts facts = FactsOf(*stack, d);
      std::cout << ModeString(S_IFREG | 0444) << " " << (facts.size ? std::to_string(*facts.size) : std::string("?"))
                << " /" << d.name << ".img (" << facts.format << " disk, layer " << d.digest << ")\n";
    }
  }
  std::cout.flush();
  return Status::Ok();
}

Status WriteOut(const ByteSource& content, uint64_t size, const std::string& label);

Status RunCat(const ImageCommandFlags& flags) {
  OCIFS_ASSIGN_OR_RETURN(auto stack, OpenStack(flags));
  std::string path = NormalizePath(flags.path);
  if (const BareDiskLayer* disk = FindDisk(*stack, path); disk != nullptr && stack->tree().Lookup(path) == nullptr) {
    // The disk's bytes as stored, decompressed (a qcow2 stays qcow2); to its end when its size is unknown.
    OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr content, stack->BareDiskFile(*disk, /*need_size=*/false));
    return WriteOut(*content, content->size(), "/" + path);
  }
  OCIFS_ASSIGN_OR_RETURN(const Node* node, stack->tree().Resolve(path));
  if (node->entry.type != EntryType::kFile) return InvalidArgument("/" + path + " is not a regular file");
  OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr content, stack->FileContent(*node));
  return WriteOut(*content, node->entry.size, "/" + path);
}

// Writes `size` bytes of `content` to stdout (kUnknownSize: to its end), with
// a progress bar labelled `label` on a terminal's stderr (nothing otherwise).
Status WriteOut(const ByteSource& content, uint64_t size, const std::string& label) {
  std::vector<uint8_t> buf(1 << 20);
  uint64_t offset = 0;
  ProgressPrinter progress(label, "oci-fs cat", /*lines=*/false);
  while (offset < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - offset));
    if (size == ByteSource::kUnknownSize) {
      OCIFS_ASSIGN_OR_RETURN(want, content.ReadAt(offset, std::span<uint8_t>(buf.data(), want)));
      if (want == 0) break;
    } else {
      OCIFS_RETURN_IF_ERROR(ReadExactly(content, offset, std::span<uint8_t>(buf.data(), want)));
    }
    size_t done = 0;
    while (done < want) {
      ssize_t n = ::write(STDOUT_FILENO, buf.data() + done, want - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("write to stdout", errno);
      }
      done += static_cast<size_t>(n);
    }
    offset += want;
    if (size != ByteSource::kUnknownSize) progress.Report(offset, size);
  }
  return Status::Ok();
}

CLI::App* AddImageSubcommand(CLI::App* app, const char* name, const char* help, ImageCommandFlags* flags) {
  CLI::App* sub = app->add_subcommand(name, help);
  AddCommonFlags(sub, &flags->common);
  sub->add_option("REF", flags->reference, "image reference")->required();
  sub->add_option("--cache-dir", flags->cache_dir, "read layers through this chunk cache");
  return sub;
}

}  // namespace

std::string ModeString(uint32_t mode) {
  std::string s(10, '-');
  switch (mode & S_IFMT) {
    case S_IFDIR: s[0] = 'd'; break;
    case S_IFLNK: s[0] = 'l'; break;
    case S_IFCHR: s[0] = 'c'; break;
    case S_IFBLK: s[0] = 'b'; break;
    case S_IFIFO: s[0] = 'p'; break;
    default: break;
  }
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (mode & (1u << (8 - i))) s[1 + i] = rwx[i];
  }
  if (mode & S_ISUID) s[3] = (mode & S_IXUSR) ? 's' : 'S';
  if (mode & S_ISGID) s[6] = (mode & S_IXGRP) ? 's' : 'S';
  if (mode & S_ISVTX) s[9] = (mode & S_IXOTH) ? 't' : 'T';
  return s;
}

void AddInspectCommand(CLI::App* app, ImageCommandFlags* flags, int* exit_code) {
  CLI::App* sub = AddImageSubcommand(app, "inspect", "show an image's digest, platform and layers", flags);
  sub->add_flag("--json", flags->json, "print JSON");
  sub->callback([flags, exit_code] {
    Status s = RunInspect(*flags);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

void AddLsCommand(CLI::App* app, ImageCommandFlags* flags, int* exit_code) {
  CLI::App* sub = AddImageSubcommand(app, "ls", "list the image's merged filesystem", flags);
  sub->add_option("PATH", flags->path, "directory or file inside the image (default /)");
  sub->callback([flags, exit_code] {
    Status s = RunLs(*flags);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

void AddCatCommand(CLI::App* app, ImageCommandFlags* flags, int* exit_code) {
  CLI::App* sub = AddImageSubcommand(app, "cat", "write one file of the image to stdout", flags);
  sub->add_option("PATH", flags->path, "file inside the image, or the name of a disk layer")->required();
  sub->callback([flags, exit_code] {
    Status s = RunCat(*flags);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace ocifs
