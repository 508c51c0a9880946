#include "inference/formats/checkpoint.h"

#include <dirent.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "inference/formats/json_text.h"
#include "kernels/core/error.h"

namespace hs {

namespace {

using json = nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
// How many names an error lists before it says "and N more".
constexpr std::size_t kMaxListed = 20;

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool isRegularFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    throw Error(ErrorKind::Io, fmt::format("cannot list model directory: {}", std::strerror(errno)), dir);
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string listed(const std::vector<std::string>& names) {
  std::vector<std::string> head(names.begin(), names.begin() + std::min(names.size(), kMaxListed));
  std::string out = fmt::format("{}", fmt::join(head, ", "));
  if (names.size() > kMaxListed) out += fmt::format(" and {} more", names.size() - kMaxListed);
  return out;
}

// weight_map of model.safetensors.index.json: tensor name -> shard file name.
std::map<std::string, std::string> readWeightMap(const std::string& indexPath) {
  std::ifstream in(indexPath, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, fmt::format("cannot open: {}", std::strerror(errno)), indexPath);
  std::stringstream text;
  text << in.rdbuf();
  const json doc = parseJsonText(text.str(), indexPath);
  if (!doc.is_object())
    throw Error(ErrorKind::Corrupt, fmt::format("must be a JSON object, found {}", doc.type_name()),
                indexPath);
  if (!doc.contains("weight_map"))
    throw Error(ErrorKind::Corrupt, "missing \"weight_map\"", indexPath, "weight_map");
  const json& wm = doc["weight_map"];
  if (!wm.is_object())
    throw Error(ErrorKind::Corrupt, fmt::format("must be an object, found {}", wm.type_name()), indexPath,
                "weight_map");
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm.items()) {
    const std::string field = "weight_map." + tensor;
    if (!shard.is_string())
      throw Error(ErrorKind::Corrupt, fmt::format("shard must be a file name string, found {}", shard.dump()),
                  indexPath, field);
    const std::string name = shard.get<std::string>();
    // Shards must sit inside the model directory: no path can lead the loader elsewhere.
    if (name.empty() || name == "." || name.find('/') != std::string::npos ||
        name.find('\\') != std::string::npos || name.find("..") != std::string::npos ||
        name.find('\0') != std::string::npos)
      throw Error(ErrorKind::Corrupt,
                  fmt::format("shard \"{}\" must be a plain file name inside the model directory", name),
                  indexPath, field);
    out[tensor] = name;
  }
  return out;
}

bool isPickleName(const std::string& name) {
  for (const char* ext : {".bin", ".pt", ".pth", ".ckpt"})
    if (endsWith(name, ext)) return true;
  return false;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& modelDir) {
  struct stat st {};
  if (::stat(modelDir.c_str(), &st) != 0)
    throw Error(ErrorKind::Io, fmt::format("model directory not found: {}", std::strerror(errno)), modelDir);
  Checkpoint ck;
  ck.dir_ = modelDir;
  if (S_ISREG(st.st_mode) && endsWith(modelDir, ".safetensors")) {
    ck.files_.push_back(SafetensorsFile::open(modelDir));
  } else {
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::Io, "not a directory", modelDir);
    const std::vector<std::string> entries = listDir(modelDir);
    auto pathOf = [&](const std::string& name) { return modelDir + "/" + name; };
    std::vector<std::string> safetensorsFiles, pickleFiles;
    for (const auto& name : entries) {
      if (endsWith(name, ".safetensors")) safetensorsFiles.push_back(name);
      if (isPickleName(name)) pickleFiles.push_back(name);
    }
    const std::string indexPath = pathOf(kIndexFile);
    if (isRegularFile(indexPath)) {
      const auto weightMap = readWeightMap(indexPath);
      std::set<std::string> shards;
      for (const auto& [tensor, shard] : weightMap) shards.insert(shard);
      std::vector<std::string> missing;
      for (const auto& shard : shards)
        if (!isRegularFile(pathOf(shard))) missing.push_back(shard);
      if (!missing.empty())
        throw Error(ErrorKind::Io,
                    fmt::format("{} shard file(s) named by the index are missing from {}: {}", missing.size(),
                                modelDir, listed(missing)),
                    indexPath);
      std::map<std::string, const SafetensorsFile*> byShard;
      for (const auto& shard : shards) {
        ck.files_.push_back(SafetensorsFile::open(pathOf(shard)));
        byShard[shard] = ck.files_.back().get();
      }
      std::vector<std::string> absent;
      for (const auto& [tensor, shard] : weightMap)
        if (!byShard[shard]->find(tensor)) absent.push_back(fmt::format("{} (in {})", tensor, shard));
      if (!absent.empty())
        throw Error(ErrorKind::Corrupt,
                    fmt::format("{} tensor(s) mapped by the index are absent from their shard: {}",
                                absent.size(), listed(absent)),
                    indexPath);
      std::vector<std::string> unlisted;
      for (const auto& file : ck.files_)
        for (const auto& t : file->tensors())
          if (!weightMap.count(t.name)) unlisted.push_back(t.name);
      if (!unlisted.empty())
        ck.warnings_.push_back(
            fmt::format("{}: {} tensor(s) present in shards but not listed in the index: {}", indexPath,
                        unlisted.size(), listed(unlisted)));
      for (const auto& name : safetensorsFiles) {
        if (shards.count(name)) continue;
        ck.warnings_.push_back(fmt::format(
            "{}: not named by {}; ignored{}", pathOf(name), kIndexFile,
            name == kSingleFile ? " (transformers would load this file instead of the shards)" : ""));
      }
    } else if (isRegularFile(pathOf(kSingleFile))) {
      ck.files_.push_back(SafetensorsFile::open(pathOf(kSingleFile)));
    } else if (!safetensorsFiles.empty()) {
      throw Error(ErrorKind::Io,
                  fmt::format("found {} but neither {} nor {}: cannot tell which files form the model",
                              listed(safetensorsFiles), kSingleFile, kIndexFile),
                  modelDir);
    } else if (!pickleFiles.empty()) {
      throw Error(
          ErrorKind::Unsupported,
          fmt::format("only pickle checkpoints found ({}); pickle checkpoints can run arbitrary code and are "
                      "not loaded; convert with: python -c \"from transformers import "
                      "AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained('{}').save_pretrained("
                      "'OUT', safe_serialization=True)\"",
                      listed(pickleFiles), modelDir),
          modelDir);
    } else {
      throw Error(ErrorKind::Io, fmt::format("no weights found: expected {} or {}", kSingleFile, kIndexFile),
                  modelDir);
    }
  }

  std::map<std::string, const TensorView*> all;
  for (const auto& file : ck.files_) {
    for (const auto& t : file->tensors()) {
      auto [it, inserted] = all.emplace(t.name, &t);
      if (!inserted)
        throw Error(ErrorKind::Corrupt,
                    fmt::format("tensor is stored in two shards: {} and {}", it->second->file, t.file),
                    ck.dir_, t.name);
    }
  }
  for (const auto& [name, view] : all) ck.byName_.push_back(view);
  return ck;
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = std::lower_bound(byName_.begin(), byName_.end(), name,
                             [](const TensorView* v, const std::string& n) { return v->name < n; });
  return it != byName_.end() && (*it)->name == name ? *it : nullptr;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(byName_.size());
  for (const TensorView* v : byName_) out.push_back(v->name);
  return out;
}

std::size_t Checkpoint::totalBytes() const {
  std::size_t total = 0;
  for (const TensorView* v : byName_) total += v->nbytes;
  return total;
}

}  // namespace hs
