#include "image/merged_tree.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <string>

namespace ocifs {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::string_view kReservedPrefix = ".wh..wh.";

bool IsDir(const Node& n) { return n.entry.type == EntryType::kDirectory; }

// The tree while layers are applied: nodes keyed by path. A subtree "a" is the
// contiguous key range ["a/", "a0") ('0' follows '/'), so deleting one is a
// range erase, without recursion however deep the tree.
class Builder {
 public:
  Builder() { nodes_[""] = ImplicitDir("", 0); }

  static Node ImplicitDir(std::string path, size_t layer) {
    Node n;
    n.entry.path = std::move(path);
    n.entry.type = EntryType::kDirectory;
    n.entry.mode = 0755;
    n.layer = layer;
    return n;
  }

  const Node* Find(const std::string& path) const {
    auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
  }

  // Removes everything below `dir` (not `dir` itself).
  void ClearChildren(const std::string& dir) {
    if (dir.empty()) {
      nodes_.erase(std::next(nodes_.begin()), nodes_.end());
      return;
    }
    nodes_.erase(nodes_.lower_bound(dir + "/"), nodes_.lower_bound(dir + "0"));
  }

  void Remove(const std::string& path) {
    if (path.empty()) return;
    ClearChildren(path);
    nodes_.erase(path);
  }

  // Makes every ancestor of `path` a directory.
  void EnsureParents(std::string_view path, size_t layer) {
    for (size_t slash = path.find('/'); slash != std::string_view::npos; slash = path.find('/', slash + 1)) {
      std::string parent(path.substr(0, slash));
      auto it = nodes_.find(parent);
      if (it != nodes_.end() && IsDir(it->second)) continue;
      if (it != nodes_.end()) nodes_.erase(it);  // a non-directory has no subtree
      nodes_[parent] = ImplicitDir(parent, layer);
    }
  }

  void Put(Node node) {
    const std::string& path = node.entry.path;
    auto it = nodes_.find(path);
    if (it != nodes_.end()) {
      if (IsDir(it->second) && IsDir(node)) {  // directory over directory: keep the children
        it->second = std::move(node);
        return;
      }
      Remove(path);
    }
    std::string key = path;
    nodes_[std::move(key)] = std::move(node);
  }

  std::map<std::string, Node>& nodes() { return nodes_; }

 private:
  std::map<std::string, Node> nodes_;
};

Status ApplyLayer(Builder& b, const TarIndex& layer, size_t index) {
  // Whiteouts first: they act on the layers below only.
  for (const TarEntry& e : layer.entries()) {
    std::string_view base = BaseName(e.path);
    if (!base.starts_with(kWhiteoutPrefix)) continue;
    std::string dir(DirName(e.path));
    if (base == kOpaqueMarker) {
      const Node* d = b.Find(dir);
      if (d && IsDir(*d)) b.ClearChildren(dir);
    } else if (!base.starts_with(kReservedPrefix)) {
      std::string victim = (dir.empty() ? "" : dir + "/") + std::string(base.substr(kWhiteoutPrefix.size()));
      b.Remove(victim);
    }
  }
  for (const TarEntry& e : layer.entries()) {
    if (BaseName(e.path).starts_with(kWhiteoutPrefix)) continue;
    if (e.path.empty() && e.type != EntryType::kDirectory) {
      spdlog::warn("{}: ignoring a {} entry for the image root", layer.source_name(), EntryTypeName(e.type));
      continue;
    }
    Node node{e, index};
    if (e.type == EntryType::kHardlink) {
      const Node* target = b.Find(e.link_target);
      if (!target || IsDir(*target)) {
        return Corrupt("layer " + std::to_string(index) + " (" + layer.source_name() + "): hardlink " + e.path +
                       " -> " + e.link_target + ": " + (target ? "target is a directory" : "target not found"));
      }
      node = *target;
      node.entry.path = e.path;
    }
    b.EnsureParents(e.path, index);
    b.Put(std::move(node));
  }
  return Status::Ok();
}

// Splits a path into its components ("/a//b/" -> a, b).
void AppendComponents(std::string_view path, std::deque<std::string>& out, bool front) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = std::min(path.find('/', pos), path.size());
    if (slash > pos) parts.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  if (front) {
    out.insert(out.begin(), parts.begin(), parts.end());
  } else {
    out.insert(out.end(), parts.begin(), parts.end());
  }
}

}  // namespace

Result<MergedTree> MergedTree::Build(const std::vector<const TarIndex*>& layers_bottom_to_top) {
  Builder b;
  for (size_t i = 0; i < layers_bottom_to_top.size(); ++i) {
    if (!layers_bottom_to_top[i]) return InvalidArgument("MergedTree::Build: layer " + std::to_string(i) + " is null");
    OCIFS_RETURN_IF_ERROR(ApplyLayer(b, *layers_bottom_to_top[i], i));
  }
  MergedTree tree;
  tree.nodes_.reserve(b.nodes().size());
  for (auto& [path, node] : b.nodes()) tree.nodes_.push_back(std::move(node));
  // Children lists (CSR). Nodes are sorted by path, so siblings come out sorted by name.
  std::vector<uint32_t> parent(tree.nodes_.size(), 0);
  std::vector<uint32_t> count(tree.nodes_.size() + 1, 0);
  for (size_t i = 1; i < tree.nodes_.size(); ++i) {
    const Node* p = tree.Lookup(DirName(tree.nodes_[i].entry.path));
    if (!p) return Internal("MergedTree: no parent for " + tree.nodes_[i].entry.path);  // EnsureParents made them
    parent[i] = static_cast<uint32_t>(p - tree.nodes_.data());
    ++count[parent[i]];
  }
  tree.child_begin_.assign(tree.nodes_.size() + 1, 0);
  for (size_t i = 0; i < tree.nodes_.size(); ++i) tree.child_begin_[i + 1] = tree.child_begin_[i] + count[i];
  tree.child_ids_.resize(tree.nodes_.empty() ? 0 : tree.nodes_.size() - 1);
  std::vector<uint32_t> fill(tree.child_begin_.begin(), tree.child_begin_.end() - 1);
  for (size_t i = 1; i < tree.nodes_.size(); ++i) tree.child_ids_[fill[parent[i]]++] = static_cast<uint32_t>(i);
  return tree;
}

const Node* MergedTree::Lookup(std::string_view path) const {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), path,
                             [](const Node& n, std::string_view p) { return n.entry.path < p; });
  return it != nodes_.end() && it->entry.path == path ? &*it : nullptr;
}

std::vector<const Node*> MergedTree::Children(std::string_view dir) const {
  std::vector<const Node*> out;
  const Node* d = Lookup(dir);
  if (!d || !IsDir(*d)) return out;
  size_t i = static_cast<size_t>(d - nodes_.data());
  for (uint32_t k = child_begin_[i]; k < child_begin_[i + 1]; ++k) out.push_back(&nodes_[child_ids_[k]]);
  return out;
}

Result<const Node*> MergedTree::Resolve(std::string_view path) const {
  std::deque<std::string> rest;
  AppendComponents(path, rest, false);
  std::string cur;  // a directory reached so far, no symlinks in it
  int hops = 0;
  while (!rest.empty()) {
    std::string comp = std::move(rest.front());
    rest.pop_front();
    if (comp == ".") continue;
    if (comp == "..") {
      cur = std::string(DirName(cur));
      continue;
    }
    std::string next = cur.empty() ? comp : cur + "/" + comp;
    const Node* n = Lookup(next);
    if (!n) return NotFound(std::string(path) + ": not in the image (no " + next + ")");
    if (n->entry.type == EntryType::kSymlink) {
      if (++hops > kMaxSymlinkHops) {
        return InvalidArgument(std::string(path) + ": too many levels of symbolic links (a loop at " + next + "?)");
      }
      const std::string& target = n->entry.link_target;
      if (target.empty()) return NotFound(std::string(path) + ": " + next + " is an empty symlink");
      if (target[0] == '/') cur.clear();
      AppendComponents(target, rest, true);
      continue;
    }
    if (!rest.empty() && !IsDir(*n)) return NotFound(std::string(path) + ": " + next + " is not a directory");
    cur = std::move(next);
  }
  return Lookup(cur);
}

}  // namespace ocifs
