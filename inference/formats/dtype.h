// Element types that can appear in a checkpoint, and the ones HeadScope can compute from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hs {

// Stored element type of a tensor. Only F32, F16 and BF16 weights can be used for compute; the
// others are parsed so that a file using them is reported precisely instead of as "corrupt".
enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool, F8_E4M3, F8_E5M2 };

// Bytes per element.
std::size_t dtypeSize(DType t);
// The safetensors spelling ("F32", "BF16", ...).
std::string dtypeName(DType t);
// Parses a safetensors dtype string; false for an unknown spelling.
bool parseDType(const std::string& s, DType& out);
// True for F32, F16 and BF16: the types a model's weights may have.
bool isFloatWeightType(DType t);

}  // namespace hs
