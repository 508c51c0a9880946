#include "inference/formats/dtype.h"
#include "tests/catch.hpp"

using hs::DType;

TEST_CASE("dtype: sizes and names follow the safetensors spec", "[formats][dtype]") {
  // Spellings and widths from huggingface/safetensors' Dtype enum (bitsize / 8).
  struct Row {
    const char* name;
    DType type;
    std::size_t size;
    bool weight;
  };
  const Row rows[] = {
      {"F64", DType::F64, 8, false},         {"F32", DType::F32, 4, true},
      {"F16", DType::F16, 2, true},          {"BF16", DType::BF16, 2, true},
      {"I64", DType::I64, 8, false},         {"I32", DType::I32, 4, false},
      {"I16", DType::I16, 2, false},         {"I8", DType::I8, 1, false},
      {"U8", DType::U8, 1, false},           {"BOOL", DType::Bool, 1, false},
      {"F8_E4M3", DType::F8_E4M3, 1, false}, {"F8_E5M2", DType::F8_E5M2, 1, false},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    DType parsed = DType::F64;
    REQUIRE(hs::parseDType(r.name, parsed));
    CHECK(parsed == r.type);
    CHECK(hs::dtypeSize(r.type) == r.size);
    CHECK(hs::dtypeName(r.type) == r.name);
    CHECK(hs::isFloatWeightType(r.type) == r.weight);
  }
}

TEST_CASE("dtype: unknown spellings are rejected", "[formats][dtype]") {
  for (const char* s : {"", "f32", "FP32", "F8_E8M0", "C64", "U16", "Bool", "F32 "}) {
    INFO(s);
    DType out = DType::F32;
    CHECK_FALSE(hs::parseDType(s, out));
  }
}
