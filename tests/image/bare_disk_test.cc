#include "image/bare_disk.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

using namespace ocifs;

namespace {

Descriptor Layer(std::string media_type, std::map<std::string, std::string> annotations = {}) {
  return Descriptor{.media_type = std::move(media_type),
                    .digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                    .size = 100,
                    .annotations = std::move(annotations)};
}

constexpr const char* kTar = "application/vnd.oci.image.layer.v1.tar";

}  // namespace

TEST_CASE("a KubeVirt disk layer is a disk by its media type, named and sized by its annotations") {
  auto d = ClassifyLayer(Layer("application/vnd.kubevirt.disk.raw+zstd",
                               {{"io.kubevirt.disk.name", "rootdisk"},
                                {"io.kubevirt.disk.size", "10Gi"},
                                {"org.opencontainers.image.title", "rootdisk.raw.zst"}}),
                         1);
  REQUIRE(d.ok());
  REQUIRE(d->has_value());
  CHECK((*d)->name == "rootdisk");
  CHECK((*d)->title == "rootdisk.raw.zst");
  CHECK((*d)->layer == 1);
  CHECK((*d)->compression == Compression::kZstd);
  CHECK((*d)->declared_size == std::optional<uint64_t>(10ull << 30));
}

TEST_CASE("LF Edge's disk layers are disks, uncompressed") {
  for (const char* mt : {"application/vnd.lfedge.disk.layer.v1+raw", "application/vnd.lfedge.disk.layer.v1+qcow2"}) {
    auto d = ClassifyLayer(Layer(mt), 0);
    REQUIRE(d.ok());
    REQUIRE(d->has_value());
    CHECK((*d)->compression == Compression::kNone);
    CHECK((*d)->name == "disk-0123456789ab");
    CHECK_FALSE((*d)->declared_size);
  }
}

TEST_CASE("an ORAS-pushed file is a disk by its title; its compression comes from the media type, else the title") {
  auto plain = ClassifyLayer(Layer(kTar, {{"org.opencontainers.image.title", "disk.qcow2"}}), 0);
  REQUIRE(plain.ok());
  REQUIRE(plain->has_value());
  CHECK((*plain)->name == "disk");
  CHECK((*plain)->compression == Compression::kNone);

  auto gz = ClassifyLayer(Layer(kTar, {{"org.opencontainers.image.title", "Fedora.IMG.gz"}}), 0);
  REQUIRE(gz.ok());
  REQUIRE(gz->has_value());
  CHECK((*gz)->name == "Fedora");
  CHECK((*gz)->compression == Compression::kGzip);

  auto typed = ClassifyLayer(Layer(std::string(kTar) + "+zstd", {{"org.opencontainers.image.title", "a.raw"}}), 0);
  REQUIRE(typed.ok());
  REQUIRE(typed->has_value());
  CHECK((*typed)->compression == Compression::kZstd);
}

TEST_CASE("an ordinary layer is no disk, titled or not") {
  for (auto annotations : std::vector<std::map<std::string, std::string>>{
           {}, {{"org.opencontainers.image.title", "rootfs"}}, {{"org.opencontainers.image.title", "notes.txt"}}}) {
    auto d = ClassifyLayer(Layer(std::string(kTar) + "+gzip", annotations), 0);
    REQUIRE(d.ok());
    CHECK_FALSE(d->has_value());
  }
}

TEST_CASE("a disk's title or name with a path in it is refused, naming the layer") {
  for (const char* title : {"../disk.img", "a/disk.img", "..", "x..y.qcow2"}) {
    auto d = ClassifyLayer(Layer("application/vnd.kubevirt.disk.raw+zstd", {{"org.opencontainers.image.title", title}}), 3);
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().message().find("layer 3") != std::string::npos);
    CHECK(d.status().message().find("plain file name") != std::string::npos);
  }
  auto named = ClassifyLayer(Layer("application/vnd.kubevirt.disk.raw+zstd", {{"io.kubevirt.disk.name", "../x"}}), 0);
  CHECK_FALSE(named.ok());
}

TEST_CASE("a size annotation that is no quantity is refused") {
  auto d = ClassifyLayer(Layer("application/vnd.kubevirt.disk.raw+zstd", {{"io.kubevirt.disk.size", "lots"}}), 0);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().message().find("io.kubevirt.disk.size") != std::string::npos);
}

TEST_CASE("a disk media type naming an unknown compression is refused") {
  auto d = ClassifyLayer(Layer("application/vnd.kubevirt.disk.raw+lz4"), 0);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == Code::kUnsupported);
}

TEST_CASE("Kubernetes quantities are bytes") {
  CHECK(*ParseQuantity("4096") == 4096);
  CHECK(*ParseQuantity("10Gi") == 10ull << 30);
  CHECK(*ParseQuantity("512Mi") == 512ull << 20);
  CHECK(*ParseQuantity("1G") == 1000000000ull);
  CHECK(*ParseQuantity("1500k") == 1500000ull);
  CHECK(*ParseQuantity("1.5Gi") == 3ull << 29);
  CHECK_FALSE(ParseQuantity("").ok());
  CHECK_FALSE(ParseQuantity("-1Gi").ok());
  CHECK_FALSE(ParseQuantity("1.5").ok());  // not whole bytes
  CHECK_FALSE(ParseQuantity("10GB").ok());
  CHECK_FALSE(ParseQuantity("99999999Ei").ok());
}

TEST_CASE("a tar header is told from a qcow2 disk's first bytes") {
  std::vector<uint8_t> qcow2(512, 0);
  std::memcpy(qcow2.data(), "QFI\xfb\0\0\0\3", 8);
  CHECK(LooksLikeBareQcow2(qcow2));
  CHECK_FALSE(IsTarHeader(qcow2));

  std::vector<uint8_t> ustar(512, 0);
  std::memcpy(ustar.data(), "QFI\xfb", 4);  // a file named so
  std::memcpy(ustar.data() + 257, "ustar", 5);
  CHECK(IsTarHeader(ustar));
  CHECK_FALSE(LooksLikeBareQcow2(ustar));

  std::vector<uint8_t> v7(512, 0);
  std::memcpy(v7.data(), "QFI\xfb", 4);
  uint64_t sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : v7[i];
  std::snprintf(reinterpret_cast<char*>(v7.data() + 148), 8, "%06llo", static_cast<unsigned long long>(sum));
  CHECK(IsTarHeader(v7));
  CHECK_FALSE(LooksLikeBareQcow2(v7));
  CHECK_FALSE(LooksLikeBareQcow2(std::vector<uint8_t>{'Q', 'F', 'I'}));
}

TEST_CASE("a titled layer whose bytes are no tar is a file of the artifact; a tar stays a tar") {
  const std::string readme_text = "# My VM\n\nBoot it with virtctl.\n";
  std::vector<uint8_t> readme(readme_text.begin(), readme_text.end());
  CHECK(IsArtifactFile(Layer(kTar, {{"org.opencontainers.image.title", "README.md"}}), readme));
  CHECK(IsArtifactFile(Layer("application/json", {{"org.opencontainers.image.title", "vm.json"}}),
                       std::vector<uint8_t>{'{', '}'}));
  // No title: not known to be a file (a mount reads it as a tar, and says so if it is none).
  CHECK_FALSE(IsArtifactFile(Layer(kTar), readme));
  // A tar, titled or not, and a directory ORAS packed, are tars.
  std::vector<uint8_t> ustar(512, 'a');
  std::memcpy(ustar.data() + 257, "ustar", 5);
  CHECK_FALSE(IsArtifactFile(Layer(kTar, {{"org.opencontainers.image.title", "files"}}), ustar));
  CHECK_FALSE(IsArtifactFile(Layer(kTar, {{"org.opencontainers.image.title", "files"},
                                          {"io.deis.oras.content.unpack", "true"}}),
                             readme));
  // An empty archive's zero block is a tar.
  CHECK_FALSE(IsArtifactFile(Layer(kTar, {{"org.opencontainers.image.title", "empty"}}), std::vector<uint8_t>(512, 0)));
  // An empty file is a file.
  CHECK(IsArtifactFile(Layer(kTar, {{"org.opencontainers.image.title", "EMPTY"}}), std::vector<uint8_t>{}));
}

TEST_CASE("disks are picked by name or title; several without a choice are listed") {
  std::vector<BareDiskLayer> disks = {{.layer = 0, .digest = "sha256:a", .name = "rootdisk", .title = "rootdisk.raw.zst"},
                                      {.layer = 1, .digest = "sha256:b", .name = "datadisk", .title = "data.raw.zst"}};
  CHECK(CheckDiskNames(disks).ok());
  CHECK((*PickDisk(disks, "datadisk"))->layer == 1);
  CHECK((*PickDisk(disks, "rootdisk.raw.zst"))->layer == 0);
  auto none = PickDisk(disks, "");
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("rootdisk, datadisk") != std::string::npos);
  CHECK(none.status().message().find("--disk") != std::string::npos);
  auto missing = PickDisk(disks, "swap");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);

  disks[1].name = "rootdisk";
  Status dup = CheckDiskNames(disks);
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.message().find("sha256:a") != std::string::npos);
  CHECK(dup.message().find("sha256:b") != std::string::npos);
}
