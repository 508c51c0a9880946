#include "inference/formats/dtype.h"

namespace hs {

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  std::size_t size;
};

// The safetensors spellings (huggingface/safetensors `enum Dtype`, serialized upper case).
constexpr DTypeInfo kTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8},         {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},   {DType::I8, "I8", 1},           {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeInfo* infoOf(DType t) {
  for (const auto& info : kTypes)
    if (info.type == t) return &info;
  return nullptr;
}
}  // namespace

std::size_t dtypeSize(DType t) {
  const DTypeInfo* info = infoOf(t);
  return info ? info->size : 0;
}

std::string dtypeName(DType t) {
  const DTypeInfo* info = infoOf(t);
  return info ? info->name : "?";
}

bool parseDType(const std::string& s, DType& out) {
  for (const auto& info : kTypes) {
    if (s == info.name) {
      out = info.type;
      return true;
    }
  }
  return false;
}

bool isFloatWeightType(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

}  // namespace hs
