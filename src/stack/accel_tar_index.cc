#include "stack/accel_tar_index.h"

#include <spdlog/spdlog.h>

#include "base/slice_source.h"
#include "image/sparse_file_source.h"
#include "image/tar_header.h"
#include "image/tar_index_file.h"

namespace ocifs {
namespace {

// A regular file listed by an artifact's tar index: checks the entry on its
// first read and forwards every read to the entry Check returned. Safe for
// concurrent use; mu_ guards inner_.
class CheckedEntrySource final : public ByteSource {
 public:
  CheckedEntrySource(std::shared_ptr<const AccelTarIndex> owner, ByteSourcePtr layer, TarEntry claimed,
                     std::string name)
      : owner_(std::move(owner)), layer_(std::move(layer)), claimed_(std::move(claimed)), name_(std::move(name)) {}

  uint64_t size() const override { return claimed_.size; }
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) const override {
    OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr inner, Inner());
    return inner->ReadAt(offset, buf);
  }
  Result<Extent> ExtentAt(uint64_t offset) const override {
    OCIFS_ASSIGN_OR_RETURN(ByteSourcePtr inner, Inner());
    return inner->ExtentAt(offset);
  }
  void Prefetch(uint64_t offset, uint64_t length) const override {
    ByteSourcePtr inner;
    {
      std::lock_guard lock(mu_);
      inner = inner_;
    }
    if (inner) inner->Prefetch(offset, length);  // never blocks: nothing before the check
  }
  std::string Describe() const override { return name_; }

 private:
  Result<ByteSourcePtr> Inner() const {
    std::lock_guard lock(mu_);
    if (inner_) return inner_;
    OCIFS_ASSIGN_OR_RETURN(TarEntry entry, owner_->Check(claimed_));
    if (entry.size != claimed_.size) {
      return Corrupt(name_ + ": the layer's tar gives it " + std::to_string(entry.size) + " bytes, not the " +
                     std::to_string(claimed_.size) + " the acceleration artifact's tar index listed (remount to see it)");
    }
    OCIFS_ASSIGN_OR_RETURN(inner_, TarEntryContent(layer_, entry, name_));
    return inner_;
  }

  const std::shared_ptr<const AccelTarIndex> owner_;
  const ByteSourcePtr layer_;
  const TarEntry claimed_;
  const std::string name_;
  mutable std::mutex mu_;
  mutable ByteSourcePtr inner_;  // guarded by mu_; set by the first successful check
};

}  // namespace

Result<ByteSourcePtr> TarEntryContent(ByteSourcePtr layer, const TarEntry& entry, std::string name) {
  if (entry.sparse) {
    OCIFS_ASSIGN_OR_RETURN(auto sparse, SparseFileSource::Make(std::move(layer), entry, name));
    return ByteSourcePtr(std::move(sparse));
  }
  OCIFS_ASSIGN_OR_RETURN(auto slice, SliceSource::Make(std::move(layer), entry.data_offset, entry.size, name));
  return ByteSourcePtr(std::move(slice));
}

AccelTarIndex::AccelTarIndex(std::shared_ptr<const TarIndex> index, ByteSourcePtr decoded, std::string walked_path,
                             std::string what)
    : index_(std::move(index)),
      decoded_(std::move(decoded)),
      walked_path_(std::move(walked_path)),
      what_(std::move(what)) {}

Result<std::shared_ptr<AccelTarIndex>> AccelTarIndex::Load(const std::string& path, ByteSourcePtr decoded,
                                                           std::string walked_path, std::string what) {
  OCIFS_ASSIGN_OR_RETURN(TarIndex index, TarIndex::Load(path));
  if (!index.has_header_offsets()) return Corrupt("tar index " + path + ": version 1 (no header offsets)");
  if (!index.complete()) return Corrupt("tar index " + path + ": not of a whole layer");
  const uint64_t size = decoded->size();
  for (const TarEntry& e : index.entries()) {
    if (e.header_offset % kTarBlockSize != 0 || e.data_offset - e.header_offset < kTarBlockSize) {
      return Corrupt("tar index " + path + ": entry " + e.path.substr(0, 200) + " has no room for its header");
    }
    if (size != ByteSource::kUnknownSize && (e.data_offset > size || e.StoredSize() > size - e.data_offset)) {
      return Corrupt("tar index " + path + ": entry " + e.path.substr(0, 200) + " ends past the layer's " +
                     std::to_string(size) + " bytes");
    }
  }
  return std::shared_ptr<AccelTarIndex>(new AccelTarIndex(std::make_shared<const TarIndex>(std::move(index)),
                                                          std::move(decoded), std::move(walked_path),
                                                          std::move(what)));
}

ByteSourcePtr AccelTarIndex::Content(const TarEntry& claimed, std::string name) const {
  return std::make_shared<CheckedEntrySource>(shared_from_this(), decoded_, claimed, std::move(name));
}

bool AccelTarIndex::dropped() const {
  std::lock_guard lock(mu_);
  return walked_ != nullptr;
}

Result<TarEntry> AccelTarIndex::Check(const TarEntry& claimed) const {
  std::shared_ptr<const TarIndex> walked;
  {
    std::lock_guard lock(mu_);
    walked = walked_;
  }
  std::string why;
  if (!walked) {
    TarIndexOptions options;
    options.start_offset = claimed.header_offset;
    options.single_entry = true;
    auto one = TarIndex::Build(*decoded_, options);
    if (!one.ok() && one.status().code() != Code::kCorrupt && one.status().code() != Code::kUnsupported) {
      return one.status();  // a failed read proves nothing
    }
    if (one.ok() && one->entries().size() == 1 && one->entries()[0] == claimed) return claimed;
    std::string found_there;
    if (!one.ok()) {
      found_there = one.status().ToString();
    } else if (one->entries().empty()) {
      found_there = "no entry";
    } else {
      found_there = std::string("entry ").append(one->entries()[0].path.substr(0, 200)).append(" (or other fields)");
    }
    why = std::string("/")
              .append(claimed.path.substr(0, 200))
              .append(" is listed with its headers at offset ")
              .append(std::to_string(claimed.header_offset))
              .append(", where the layer has ")
              .append(found_there);
  }
  OCIFS_ASSIGN_OR_RETURN(walked, Walked(why));
  const TarEntry* found = nullptr;
  for (const TarEntry& e : walked->entries()) {
    if (e.path == claimed.path) found = &e;  // the later one wins
  }
  if (found == nullptr || found->type != EntryType::kFile) {
    return Corrupt(what_ + ": the acceleration artifact's tar index lists /" + claimed.path.substr(0, 200) +
                   ", which the layer does not have as a regular file (remount to see it)");
  }
  return *found;
}

Result<std::shared_ptr<const TarIndex>> AccelTarIndex::Walked(const std::string& why) const {
  std::lock_guard lock(mu_);
  if (walked_) return walked_;
  spdlog::warn("{}: the acceleration artifact's tar index is wrong ({}); not using it for this layer, walking "
               "its tar instead",
               what_, why);
  auto walked = TarIndex::Build(*decoded_);
  if (!walked.ok()) return walked.status().WithContext(what_);
  if (!walked->complete()) return Corrupt(what_ + ": its tar did not end");  // Build without on_entry ends it
  walked_ = std::make_shared<const TarIndex>(std::move(walked).value());
  // Later mounts load this one (the local walk is trusted) and skip the artifact's.
  if (Status s = walked_->Save(walked_path_); !s.ok()) {
    spdlog::warn("{}: cannot save its tar index: {}", what_, s.ToString());
  }
  return walked_;
}

}  // namespace ocifs
