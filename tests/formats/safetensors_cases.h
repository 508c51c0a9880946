// The safetensors case tables (reliability.md section 5, cases 1-12), shared by test_safetensors.cpp
// and the transformers/safetensors reference comparison in test_hf_reference.cpp.
#pragma once

#include <string>
#include <vector>

#include "kernels/core/error.h"
#include "tests/formats/scratch_dir.h"

namespace hs::test {

// One tensor entry of a hand-written header.
inline std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                         uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

// Files the reference loader accepts (test_zero_sized_tensor, test_empty_shapes_allowed,
// test_whitespace_leading_padded_header, ...), built by hand.
struct AcceptedRow {
  const char* what;
  std::string header, data;
  std::size_t tensors;
};
inline std::vector<AcceptedRow> acceptedRows() {
  const std::string four(4, '\x01');
  return {
      {"empty header object", "{}", "", 0},
      {"metadata only", R"({"__metadata__":{"k":"v"}})", "", 0},
      {"null metadata", R"({"__metadata__":null,)" + entry("a", "U8", "[4]", 0, 4) + "}", four, 1},
      {"leading and trailing space padding", "   {" + entry("a", "F32", "[1]", 0, 4) + "}    ", four, 1},
      {"zero-size tensors share an offset",
       "{" + entry("z1", "F32", "[2,0]", 0, 0) + "," + entry("z2", "BF16", "[0]", 0, 0) + "," +
           entry("a", "I32", "[]", 0, 4) + "}",
       four, 3},
      {"entries out of offset order",
       "{" + entry("b", "U8", "[2]", 2, 4) + "," + entry("a", "I8", "[2]", 0, 2) + "}", four, 2},
      {"unknown extra keys in an entry",
       R"({"a":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4],"extra":[1,2]}})", four, 1},
  };
}

// One row per case 1-11 of reliability.md section 5: the bytes, the error kind, and fragments
// of the message (the file name is checked separately).
struct BrokenRow {
  const char* what;
  std::string bytes;
  ErrorKind kind;
  std::vector<std::string> fragments;
};
inline std::vector<BrokenRow> brokenRows() {
  const std::string e8 = entry("w", "F32", "[2]", 0, 8);
  const std::string ok8 = "{" + e8 + "}";
  const std::string lfs =
      "version https://git-lfs.github.com/spec/v1\noid "
      "sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24"
      "d17e2393\nsize 16060522880\n";
  return {
      // 1. shorter than 8 bytes
      {"empty file", "", ErrorKind::Corrupt, {"header too small", "file has 0"}},
      {"7 bytes", std::string("\x02\0\0\0\0\0\0", 7), ErrorKind::Corrupt, {"header too small", "file has 7"}},
      // 2. N above the limit or past the end
      {"LFS pointer", lfs, ErrorKind::Corrupt, {"exceeds the limit of 100000000", "Git LFS pointer"}},
      {"N over the limit", hs::test::le64(100'000'001) + "{}", ErrorKind::Corrupt, {"header size 100000001"}},
      {"N past the end",
       hs::test::le64(1000) + ok8,
       ErrorKind::Corrupt,
       {"runs past the end", "expected at least 1008 bytes", "incomplete download"}},
      // 3. 8 + N wraps
      {"N near 2^64", hs::test::le64(~uint64_t{0} - 3) + "{}", ErrorKind::Corrupt, {"exceeds the limit"}},
      // 4. not UTF-8, not JSON, NUL padding, trailing garbage
      {"not UTF-8", safetensorsImage("{\"w\xff\":1}", ""), ErrorKind::Corrupt, {"not valid UTF-8 JSON"}},
      {"not an object", safetensorsImage("[1,2]", ""), ErrorKind::Corrupt, {"must start with '{'", "0x5b"}},
      {"empty header", safetensorsImage("", ""), ErrorKind::Corrupt, {"header is empty"}},
      {"NUL padding",
       safetensorsImage(ok8 + std::string(4, '\0'), std::string(8, '\0')),
       ErrorKind::Corrupt,
       {"NUL byte at file offset " + std::to_string(8 + ok8.size())}},
      {"trailing garbage",
       safetensorsImage("{}xyz", ""),
       ErrorKind::Corrupt,
       {"not valid UTF-8 JSON", "offset 10"}},
      {"number overflowing a double (fuzzer finding)",
       safetensorsImage(R"({"__metadata__": 1e999})", ""),
       ErrorKind::Corrupt,
       {"header is not valid JSON", "1e999"}},
      {"broken JSON",
       safetensorsImage("{\"w\":{\"dtype\":", ""),
       ErrorKind::Corrupt,
       {"not valid UTF-8 JSON"}},
      // 5. metadata values, missing or mistyped entry keys
      {"metadata int",
       safetensorsImage(R"({"__metadata__":{"epoch":3}})", ""),
       ErrorKind::Corrupt,
       {"__metadata__", "\"epoch\" must be a string"}},
      {"metadata list",
       safetensorsImage(R"({"__metadata__":[1]})", ""),
       ErrorKind::Corrupt,
       {"__metadata__"}},
      {"missing dtype",
       safetensorsImage(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
       ErrorKind::Corrupt,
       {"w: missing \"dtype\""}},
      {"missing shape",
       safetensorsImage(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, '\0')),
       ErrorKind::Corrupt,
       {"w: missing \"shape\""}},
      {"missing data_offsets",
       safetensorsImage(R"({"w":{"dtype":"F32","shape":[2]}})", std::string(8, '\0')),
       ErrorKind::Corrupt,
       {"w: missing \"data_offsets\""}},
      {"entry not an object",
       safetensorsImage(R"({"w":5})", ""),
       ErrorKind::Corrupt,
       {"w: entry must be an object"}},
      {"dtype not a string",
       safetensorsImage(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
       ErrorKind::Corrupt,
       {"w: \"dtype\" must be a string"}},
      {"shape not a list",
       safetensorsImage(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", ""),
       ErrorKind::Corrupt,
       {"w: \"shape\" must be a list"}},
      {"negative dim",
       safetensorsImage("{" + entry("w", "F32", "[-1]", 0, 4) + "}", "abcd"),
       ErrorKind::Corrupt,
       {"w: shape[0] must be a non-negative integer", "-1"}},
      {"float dim",
       safetensorsImage("{" + entry("w", "F32", "[2.5]", 0, 8) + "}", ""),
       ErrorKind::Corrupt,
       {"w: shape[0]", "2.5"}},
      {"three offsets",
       safetensorsImage(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "abcd"),
       ErrorKind::Corrupt,
       {"w: \"data_offsets\" must be [begin, end]"}},
      // 6. unknown or unsupported dtype
      {"typo dtype",
       safetensorsImage("{" + entry("w", "F33", "[1]", 0, 4) + "}", "abcd"),
       ErrorKind::Unsupported,
       {"w: unknown dtype \"F33\""}},
      {"F8_E8M0",
       safetensorsImage("{" + entry("w", "F8_E8M0", "[4]", 0, 4) + "}", "abcd"),
       ErrorKind::Unsupported,
       {"w: dtype F8_E8M0", "not supported"}},
      {"C64",
       safetensorsImage("{" + entry("w", "C64", "[1]", 0, 8) + "}", std::string(8, 'x')),
       ErrorKind::Unsupported,
       {"w: dtype C64"}},
      // 7. shape product or byte size overflows
      {"numel overflow",
       safetensorsImage("{" + entry("w", "F32", "[2,9223372036854775807]", 0, 8) + "}", ""),
       ErrorKind::Corrupt,
       {"w: element count", "overflows 64 bits"}},
      {"byte size overflow",
       safetensorsImage("{" + entry("w", "F32", "[4611686018427387904]", 0, 8) + "}", ""),
       ErrorKind::Corrupt,
       {"w: byte size", "overflows 64 bits"}},
      {"dim above 2^64",
       safetensorsImage("{" + entry("w", "F32", "[18446744073709551616]", 0, 8) + "}", ""),
       ErrorKind::Corrupt,
       {"w: shape[0]"}},
      // 8. offsets inverted, overlapping, with gaps, not starting at 0
      {"inverted",
       safetensorsImage("{" + entry("w", "U8", "[0]", 8, 0) + "}", ""),
       ErrorKind::Corrupt,
       {"w: data_offsets [8, 0] are inverted"}},
      {"overlap",
       safetensorsImage("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[8]", 4, 12) + "}",
                        std::string(12, 'x')),
       ErrorKind::Corrupt,
       {"b: data_offsets [4, 12] overlap tensor \"a\""}},
      {"gap",
       safetensorsImage("{" + entry("a", "U8", "[4]", 0, 4) + "," + entry("b", "U8", "[4]", 8, 12) + "}",
                        std::string(12, 'x')),
       ErrorKind::Corrupt,
       {"b: gap of 4 bytes between tensor \"a\""}},
      {"not at 0",
       safetensorsImage("{" + entry("a", "U8", "[4]", 4, 8) + "}", std::string(8, 'x')),
       ErrorKind::Corrupt,
       {"a: data_offsets must start at 0", "begin 4"}},
      {"shared offsets (json attack)",
       safetensorsImage("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[4]", 0, 16) + "}",
                        std::string(16, 'x')),
       ErrorKind::Corrupt,
       {"overlap tensor \"a\""}},
      // 9. byte range vs numel * dtype size
      {"range too small",
       safetensorsImage("{" + entry("w", "F32", "[2]", 0, 4) + "}", "abcd"),
       ErrorKind::Corrupt,
       {"w: expected 8 bytes for shape [2] x F32, header says 4"}},
      {"range too large",
       safetensorsImage("{" + entry("w", "BF16", "[3]", 0, 8) + "}", std::string(8, 'x')),
       ErrorKind::Corrupt,
       {"w: expected 6 bytes for shape [3] x BF16, header says 8"}},
      // 10. truncated or trailing bytes
      {"truncated",
       safetensorsImage(ok8, "abcd"),
       ErrorKind::Corrupt,
       {"truncated: expected " + std::to_string(8 + ok8.size() + 8) + " bytes, file has " +
        std::to_string(8 + ok8.size() + 4)}},
      {"trailing",
       safetensorsImage(ok8, std::string(11, 'x')),
       ErrorKind::Corrupt,
       {"trailing bytes: expected " + std::to_string(8 + ok8.size() + 8) + " bytes, file has " +
        std::to_string(8 + ok8.size() + 11)}},
      {"header-only file with data", safetensorsImage("{}", "x"), ErrorKind::Corrupt, {"trailing bytes"}},
      // 11. duplicate names
      {"duplicate tensor",
       safetensorsImage("{" + e8 + "," + e8 + "}", std::string(8, 'x')),
       ErrorKind::Corrupt,
       {"w: duplicate tensor name"}},
      {"duplicate tensor after others",
       safetensorsImage("{" + entry("w", "U8", "[4]", 0, 4) + "," + entry("v", "U8", "[4]", 4, 8) + "," +
                            entry("w", "U8", "[4]", 4, 8) + "}",
                        std::string(8, 'x')),
       ErrorKind::Corrupt,
       {"w: duplicate tensor name"}},
      {"duplicate key in entry",
       safetensorsImage(R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", "abcd"),
       ErrorKind::Corrupt,
       {"duplicate key \"dtype\""}},
  };
}

}  // namespace hs::test
