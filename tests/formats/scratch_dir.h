// Test support for the formats tests: a temporary directory, raw file writing, hand-built
// safetensors images, and an assertion for typed HeadScope errors.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/remove_tree.h"

namespace hs::test {

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hs_formats_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    removeTree(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void writeBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::string readBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// u64 little-endian, as the safetensors header length is stored.
inline std::string le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file image built by hand from the format description (not by our writer):
// u64 header length, the header text exactly as given, then the data bytes.
inline std::string safetensorsImage(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// Runs `fn`, requires an hs::Error of `kind` whose what() contains every fragment.
template <typename Fn>
void requireError(Fn&& fn, ErrorKind kind, const std::vector<std::string>& fragments) {
  try {
    fn();
  } catch (const Error& e) {
    INFO("what(): " << e.what());
    CHECK(errorKindName(e.kind()) == std::string(errorKindName(kind)));
    for (const auto& f : fragments) {
      INFO("expected fragment: " << f);
      CHECK(std::string(e.what()).find(f) != std::string::npos);
    }
    return;
  } catch (const std::exception& e) {
    FAIL("expected hs::Error, got std::exception: " << e.what());
  }
  FAIL("expected hs::Error of kind " << errorKindName(kind) << ", nothing was thrown");
}

}  // namespace hs::test
