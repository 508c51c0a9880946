// NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order): what `headscope forward --dump`
// writes and what the parity tests read from fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hs {

// A loaded array: data converted to float64/int64 as the test or tool needs.
struct NpyArray {
  std::string descr;  // e.g. "<f4", "<i8"
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;  // raw little-endian element data
  std::string path;                  // the file it was read from, for error messages
  int64_t numel() const;
  std::vector<float> asFloat() const;  // for <f4, <f8, <f2; Mismatch for other types
  std::vector<int64_t> asInt() const;  // for <i8, <i4, <i2, |i1, <u1, |u1, |b1; Mismatch otherwise
};

// Reads a .npy file; errors (Io/Corrupt/Unsupported) name the file.
NpyArray readNpy(const std::string& path);
// Writes float32 data of the given shape (temp file + rename).
void writeNpy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void writeNpy(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape);

}  // namespace hs
