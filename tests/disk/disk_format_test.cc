#include "disk/disk_format.h"

#include <catch2/catch.hpp>

#include "base/memory_source.h"

using namespace ocifs;

namespace {

std::shared_ptr<MemorySource> FormatBytes(std::string head, size_t size = 4096) {
  std::vector<uint8_t> b(std::max(size, head.size()), 0);
  std::copy(head.begin(), head.end(), b.begin());
  return std::make_shared<MemorySource>(std::move(b), "disk.img");
}

void RequireRefused(const ByteSource& src, const std::string& format) {
  auto r = DetectDiskFormat(src);
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.status().code() == Code::kUnsupported);
  INFO(r.status().message());
  REQUIRE(r.status().message().find(format) != std::string::npos);
}

}  // namespace

TEST_CASE("the qcow2 magic is detected as qcow2") {
  auto r = DetectDiskFormat(*FormatBytes(std::string("QFI\xfb\0\0\0\3", 8)));
  REQUIRE(r.ok());
  REQUIRE(*r == DiskFormat::kQcow2);
}

TEST_CASE("bytes without a known magic are raw, including an empty or tiny file") {
  for (auto src : {FormatBytes("\xeb\x63\x90 MBR boot sector"), FormatBytes("", 0), FormatBytes("QF", 2)}) {
    auto r = DetectDiskFormat(*src);
    REQUIRE(r.ok());
    REQUIRE(*r == DiskFormat::kRaw);
  }
}

TEST_CASE("other image formats are refused naming the format") {
  RequireRefused(*FormatBytes("KDMV"), "VMDK");
  RequireRefused(*FormatBytes("# Disk DescriptorFile\n"), "VMDK");
  RequireRefused(*FormatBytes("vhdxfile"), "VHDX");
  RequireRefused(*FormatBytes(std::string("QED\0", 4)), "QED");
  RequireRefused(*FormatBytes("conectix"), "VHD");
  RequireRefused(*FormatBytes("WithoutFreeSpace"), "Parallels");
  std::string vdi(0x44, ' ');
  vdi.replace(0x40, 4, "\x7f\x10\xda\xbe");
  RequireRefused(*FormatBytes(vdi), "VDI");
}

TEST_CASE("a fixed VHD is recognised by the footer at its end") {
  std::vector<uint8_t> b(8192, 0x61);
  std::string footer = "conectix";
  std::copy(footer.begin(), footer.end(), b.end() - 512);
  MemorySource src(std::move(b), "fixed.vhd");
  RequireRefused(src, "VHD");
}

TEST_CASE("the format name is in the message with the file's name") {
  auto r = DetectDiskFormat(*FormatBytes("vhdxfile"));
  REQUIRE(r.status().message().find("disk.img") != std::string::npos);
  REQUIRE(DiskFormatName(DiskFormat::kQcow2) == "qcow2");
}
