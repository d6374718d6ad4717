#include "cli/accel_command.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "accel/accel_manifest.h"
#include "base/whole_file.h"
#include "cli/progress_printer.h"
#include "cache/access_profile.h"
#include "registry/digest.h"
#include "registry/image_source.h"
#include "registry/referrers.h"
#include "registry/registry_writer.h"
#include "stack/accel_builder.h"

namespace ocifs {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Builds the artifact of one platform's image and pushes it; prints its reference.
Status BuildAndPush(const Reference& ref, AccelBuildOptions build,
                    RegistryWriter& writer, Reference target) {
  ProgressPrinter printer("reading layers", "oci-fs accelerate", /*lines=*/true);
  build.progress = [&](uint64_t done, uint64_t total) { printer.Report(done, total); };
  OCIFS_ASSIGN_OR_RETURN(AccelPieces pieces, BuildAccelPieces(ref, build));
  for (const std::string& why : pieces.unindexed) spdlog::warn("layer {} gets no index", why);
  for (const std::string& why : pieces.plain_layers) std::cerr << "layer " << why << " needs no index\n";

  AccelManifest m;
  m.subject.media_type = pieces.image.manifest_media_type;
  m.subject.digest = pieces.image.manifest_digest;
  m.subject.size = pieces.image.manifest_size;
  m.created = Rfc3339Now();
  OCIFS_RETURN_IF_ERROR(writer.PushBlob(std::string(accel::kEmptyMediaType), Bytes("{}")).status());
  for (const AccelPieces::LayerIndex& g : pieces.layer_indexes) {
    OCIFS_ASSIGN_OR_RETURN(Descriptor blob, writer.PushBlob(std::string(LayerIndexMediaType(g.kind)), Bytes(g.bytes)));
    m.layer_indexes.push_back({g.kind, std::move(blob), g.layer_digest, g.layer_size});
  }
  for (const AccelPieces::TarIndexBytes& t : pieces.tar_indexes) {
    OCIFS_ASSIGN_OR_RETURN(Descriptor blob, writer.PushBlob(std::string(accel::kTarIndexMediaType), Bytes(t.bytes)));
    m.tar_indexes.push_back({std::move(blob), t.layer_digest, t.layer_size});
  }
  for (const AccelPieces::LayerBytes& r : pieces.raw_spans) {
    OCIFS_ASSIGN_OR_RETURN(Descriptor blob, writer.PushBlob(std::string(accel::kRawSpansMediaType), Bytes(r.bytes)));
    m.raw_spans.push_back({std::move(blob), r.layer_digest, r.layer_size});
  }
  for (const AccessProfile& profile : pieces.profiles) {
    // Fitted to the gzip indexes (AccelPieces::profiles), so not the files' own text.
    const std::string text = FormatAccessProfile(profile);
    OCIFS_ASSIGN_OR_RETURN(Descriptor blob, writer.PushBlob(std::string(accel::kProfileMediaType), Bytes(text)));
    m.profiles.push_back(std::move(blob));
  }
  const std::string body = SerializeAccelManifest(m);
  const std::string digest = Sha256Digest(Bytes(body));
  OCIFS_ASSIGN_OR_RETURN(PutManifestResult put,
                         writer.PutManifest(digest, std::string(media_type::kOciManifest), body));
  if (!put.subject_processed()) {
    // No referrers API: the artifact is listed in the subject's fallback tag.
    Descriptor listed;
    listed.media_type = std::string(media_type::kOciManifest);
    listed.digest = digest;
    listed.size = body.size();
    listed.artifact_type = std::string(accel::kArtifactType);
    listed.annotations[std::string(accel::kCreatedAnnotation)] = m.created;
    OCIFS_RETURN_IF_ERROR(writer.AddToFallbackTag(m.subject.digest, listed));
  }
  target.digest = digest;
  spdlog::info("pushed {} ({} layer indexes, {} tar indexes, {} raw span tables, {} profiles) for {}",
               target.ToString(), m.layer_indexes.size(), m.tar_indexes.size(), m.raw_spans.size(),
               m.profiles.size(), pieces.image.manifest_digest);
  std::cout << target.ToString() << std::endl;
  return Status::Ok();
}

Status RunAccelerate(const AccelerateFlags& flags) {
  OCIFS_RETURN_IF_ERROR(ConfigureLogging(flags.common));
  OCIFS_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(flags.reference));
  if (ref.transport != Reference::Transport::kDocker) {
    return InvalidArgument("accelerate pushes to a registry: " + flags.reference + " is not a docker:// reference");
  }
  OCIFS_ASSIGN_OR_RETURN(RegistryOptions registry, ToRegistryOptions(flags.common));
  Reference target = ref;
  if (!flags.to.empty()) {
    OCIFS_ASSIGN_OR_RETURN(Reference to, Reference::Parse(flags.to));
    if (to.transport != Reference::Transport::kDocker) return InvalidArgument("--to must name a registry repository");
    target = to;
  }
  target.tag.clear();
  target.digest.clear();
  // Profiles are checked before any layer is read.
  AccelBuildOptions build;
  for (const std::string& file : flags.profiles) {
    OCIFS_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(file, accel::kMaxPieceBytes, "profile"));
    Result<AccessProfile> parsed = ParseAccessProfile(text, file);
    if (!parsed.ok()) return parsed.status().WithContext("--profile");
    build.profiles.push_back(std::move(parsed).value());  // checkpoints before the regions it names
  }
  // So is the right to push: a pull-only credential fails here, naming the scope.
  RegistryOptions push = registry;
  push.push = true;
  OCIFS_ASSIGN_OR_RETURN(std::unique_ptr<RegistryWriter> writer, RegistryWriter::Open(target, push));
  OCIFS_RETURN_IF_ERROR(writer->CheckPushAccess());

  build.registry = registry;
  build.work_dir = flags.work_dir;
  // One artifact per platform: the one asked for (--platform, else the
  // host's), or every platform of the index (--all-platforms).
  std::vector<std::string> platforms{registry.platform};
  if (flags.all_platforms) {
    if (!registry.platform.empty()) return InvalidArgument("--platform and --all-platforms exclude each other");
    OCIFS_ASSIGN_OR_RETURN(std::unique_ptr<ImageSource> source, OpenImageSource(ref, registry));
    OCIFS_ASSIGN_OR_RETURN(std::vector<Platform> listed, source->ListPlatforms());
    if (!listed.empty()) {
      platforms.clear();
      for (const Platform& p : listed) platforms.push_back(p.ToString());
    }
  }
  for (const std::string& platform : platforms) {
    build.registry.platform = platform;
    Status s = BuildAndPush(ref, build, *writer, target);
    if (!s.ok()) return platform.empty() ? s : s.WithContext("platform " + platform);
  }
  return Status::Ok();
}

}  // namespace

void AddAccelerateCommand(CLI::App* app, AccelerateFlags* flags, int* exit_code) {
  CLI::App* sub = app->add_subcommand(
      "accelerate", "build an image's acceleration artifact and push it next to the image (docs/accel-format.md)");
  sub->add_option("REF", flags->reference, "image reference")->required();
  sub->add_option("--profile", flags->profiles, "attach this access profile (--record-profile output); repeatable");
  sub->add_option("--to", flags->to, "push the artifact to this repository instead (REGISTRY/REPO)");
  sub->add_flag("--all-platforms", flags->all_platforms,
               "of an image index, one artifact for each platform it lists (default: --platform, else this host's)");
  sub->add_option("--work-dir", flags->work_dir,
                  "keep the layers being read here, in a temporary directory (default /var/tmp)");
  AddCommonFlags(sub, &flags->common);
  sub->callback([flags, exit_code] {
    Status s = RunAccelerate(*flags);
    if (!s.ok()) *exit_code = Fail(s);
  });
}

}  // namespace ocifs
