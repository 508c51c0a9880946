// Crash-safe file replacement shared by the safetensors and .npy writers.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace hs {

// One contiguous piece of a file's contents.
struct ByteChunk {
  const void* data;
  std::size_t size;
};

// Writes the chunks to a temp file beside `path`, fsyncs it, then renames it over `path`, so a
// reader (or a mapping of the old file, safetensors#762) never sees a half-written file.
void writeFileAtomically(const std::string& path, const std::vector<ByteChunk>& chunks);

}  // namespace hs
