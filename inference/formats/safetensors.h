// A memory-mapped, fully validated .safetensors file (https://github.com/huggingface/safetensors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "inference/formats/dtype.h"

namespace hs {

// Where one tensor lies in a mapped file. `data` stays valid as long as the owning file is alive.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  std::string file;  // path of the file holding it, for error messages

  int64_t numel() const;
  std::string shapeString() const;  // "[4096, 128]"
};

// One .safetensors file, mapped read-only. open() checks everything the reference loader checks
// (header size, JSON, dtypes, shape overflow, contiguous non-overlapping offsets covering the whole
// buffer, duplicate names) before any tensor can be read; every error names the file and tensor.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // All tensors in file order (sorted by offset).
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // The tensor with this name, or nullptr.
  const TensorView* find(const std::string& name) const;
  // The string-to-string "__metadata__" map (may be empty).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::size_t fileSize() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Runs every check open() runs on a whole file image in memory; throws hs::Error naming `path`.
// For fuzzing and for validating a buffer before it is written anywhere.
void checkSafetensorsBytes(const std::byte* data, std::size_t size, const std::string& path);

// Writes tensors to a .safetensors file (temp file + fsync + rename). For tests and exports.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};
void writeSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace hs
