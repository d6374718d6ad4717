#include "disk/disk_view.h"

#include "disk/disk_format.h"
#include "disk/qcow2_source.h"

namespace ocifs {

Result<ByteSourcePtr> OpenDiskView(ByteSourcePtr file, const DiskViewOptions& options) {
  if (!file) return InvalidArgument("OpenDiskView: no file");
  OCIFS_ASSIGN_OR_RETURN(DiskFormat format, DetectDiskFormat(*file, options.check_trailer));
  if (format == DiskFormat::kRaw) return file;
  std::string name = file->Describe();
  auto view = Qcow2Source::Open(std::move(file), options);
  if (!view.ok()) return view.status().WithContext(name);
  return ByteSourcePtr(std::move(*view));
}

}  // namespace ocifs
