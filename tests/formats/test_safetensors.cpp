#include <cstring>
#include <nlohmann/json.hpp>

#include "inference/formats/safetensors.h"
#include "tests/formats/scratch_dir.h"

using hs::DType;
using hs::ErrorKind;
using hs::test::requireError;
using hs::test::safetensorsImage;
using hs::test::ScratchDir;

namespace {

std::vector<std::byte> bytesOf(const void* p, std::size_t n) {
  std::vector<std::byte> out(n);
  std::memcpy(out.data(), p, n);
  return out;
}

std::string str(const std::byte* p, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

// One tensor entry of a hand-written header.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                  uint64_t e) {
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
std::vector<AcceptedRow> acceptedRows() {
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
std::vector<BrokenRow> brokenRows() {
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
      {"number overflowing a double (fuzzer finding)", safetensorsImage(R"({"__metadata__": 1e999})", ""),
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
       {"w: shape [2] x F32 needs 8 bytes, header says 4"}},
      {"range too large",
       safetensorsImage("{" + entry("w", "BF16", "[3]", 0, 8) + "}", std::string(8, 'x')),
       ErrorKind::Corrupt,
       {"w: shape [3] x BF16 needs 6 bytes, header says 8"}},
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

}  // namespace

TEST_CASE("safetensors: written files read back byte for byte", "[formats][safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("model.safetensors");
  const float f32[6] = {0.f, 1.f, -2.5f, 3.25f, 1e-30f, -0.f};
  // F16 bit patterns: 1.0, -2.0, 65504 (max), smallest subnormal.
  const uint16_t f16[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
  // BF16 bit patterns: 1.0, ~3.140625, -inf.
  const uint16_t bf16[3] = {0x3F80, 0x4049, 0xFF80};
  const int64_t scalar = -7;
  hs::writeSafetensors(path,
                       {{"w.f32", DType::F32, {2, 3}, bytesOf(f32, sizeof f32)},
                        {"w.f16", DType::F16, {4}, bytesOf(f16, sizeof f16)},
                        {"w.bf16", DType::BF16, {3, 1}, bytesOf(bf16, sizeof bf16)},
                        {"empty", DType::F32, {2, 0}, {}},
                        {"step", DType::I64, {}, bytesOf(&scalar, sizeof scalar)}},
                       {{"format", "pt"}});

  // The on-disk layout, checked against the format description rather than our reader.
  const std::string raw = hs::test::readBytes(path);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  CHECK((8 + n) % 8 == 0);
  const std::string header = raw.substr(8, n);
  CHECK(header.front() == '{');
  CHECK(header.find_last_not_of(' ') == header.rfind('}'));
  const auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"]["format"] == "pt");
  CHECK(j["w.f32"]["dtype"] == "F32");
  CHECK(j["step"]["shape"] == nlohmann::json::array());
  CHECK(raw.size() == 8 + n + sizeof f32 + sizeof f16 + sizeof bf16 + sizeof scalar);

  auto file = hs::SafetensorsFile::open(path);
  CHECK(file->fileSize() == raw.size());
  CHECK(file->metadata().at("format") == "pt");
  REQUIRE(file->tensors().size() == 5);
  const hs::TensorView* t = file->find("w.f32");
  REQUIRE(t);
  CHECK(t->dtype == DType::F32);
  CHECK(t->shape == std::vector<int64_t>{2, 3});
  CHECK(t->shapeString() == "[2, 3]");
  CHECK(t->numel() == 6);
  CHECK(t->nbytes == sizeof f32);
  CHECK(t->file == path);
  CHECK(std::memcmp(t->data, f32, sizeof f32) == 0);
  // The writer pads the header so the data section starts 8-byte aligned.
  CHECK(reinterpret_cast<std::uintptr_t>(file->tensors().front().data) % 8 == 0);

  t = file->find("w.f16");
  REQUIRE(t);
  CHECK(t->dtype == DType::F16);
  CHECK(str(t->data, t->nbytes) == std::string(reinterpret_cast<const char*>(f16), sizeof f16));
  t = file->find("w.bf16");
  REQUIRE(t);
  CHECK(t->dtype == DType::BF16);
  CHECK(t->shape == std::vector<int64_t>{3, 1});
  CHECK(str(t->data, t->nbytes) == std::string(reinterpret_cast<const char*>(bf16), sizeof bf16));
  t = file->find("empty");
  REQUIRE(t);
  CHECK(t->numel() == 0);
  CHECK(t->nbytes == 0);
  t = file->find("step");
  REQUIRE(t);
  CHECK(t->shape.empty());
  CHECK(t->shapeString() == "[]");
  CHECK(t->numel() == 1);
  int64_t back = 0;
  std::memcpy(&back, t->data, 8);
  CHECK(back == -7);
  CHECK(file->find("missing") == nullptr);
  // tensors() is in file order.
  for (std::size_t i = 1; i < file->tensors().size(); ++i)
    CHECK(file->tensors()[i - 1].data <= file->tensors()[i].data);
}

TEST_CASE("safetensors: hand-built files the reference loader accepts", "[formats][safetensors]") {
  ScratchDir dir;
  const auto rows = acceptedRows();
  for (const auto& r : rows) {
    INFO(r.what);
    const std::string path = dir.file("ok.safetensors");
    hs::test::writeBytes(path, safetensorsImage(r.header, r.data));
    auto file = hs::SafetensorsFile::open(path);
    CHECK(file->tensors().size() == r.tensors);
  }
  // Entries come back sorted by offset, with data pointers at their offsets.
  hs::test::writeBytes(dir.file("o.safetensors"), safetensorsImage("{" + entry("b", "U8", "[2]", 2, 4) + "," +
                                                                       entry("a", "U8", "[2]", 0, 2) + "}",
                                                                   "ABCD"));
  auto file = hs::SafetensorsFile::open(dir.file("o.safetensors"));
  CHECK(file->tensors()[0].name == "a");
  CHECK(str(file->find("a")->data, 2) == "AB");
  CHECK(str(file->find("b")->data, 2) == "CD");
}

TEST_CASE("safetensors: broken files fail with a typed error naming file and tensor",
          "[formats][safetensors]") {
  ScratchDir dir;
  const auto rows = brokenRows();
  for (const auto& r : rows) {
    SECTION(r.what) {
      const std::string path = dir.file("broken.safetensors");
      hs::test::writeBytes(path, r.bytes);
      std::vector<std::string> fragments = r.fragments;
      fragments.push_back(path);  // every error names the file
      requireError([&] { hs::SafetensorsFile::open(path); }, r.kind, fragments);
      // The in-memory check applies the same rules.
      requireError(
          [&] {
            hs::checkSafetensorsBytes(reinterpret_cast<const std::byte*>(r.bytes.data()), r.bytes.size(),
                                      path);
          },
          r.kind, fragments);
    }
  }
}

TEST_CASE("safetensors: unreadable paths are i/o errors", "[formats][safetensors]") {
  ScratchDir dir;
  requireError([&] { hs::SafetensorsFile::open(dir.file("absent.safetensors")); }, ErrorKind::Io,
               {dir.file("absent.safetensors"), "cannot open"});
  requireError([&] { hs::SafetensorsFile::open(dir.path()); }, ErrorKind::Io, {"not a regular file"});
}

TEST_CASE("safetensors: overwriting a mapped file leaves the open mapping intact", "[formats][safetensors]") {
  // huggingface/safetensors#762: writing over a file that is still mapped once produced zeros.
  ScratchDir dir;
  const std::string path = dir.file("m.safetensors");
  const float a[4] = {1.f, 2.f, 3.f, 4.f};
  const float b[4] = {9.f, 9.f, 9.f, 9.f};
  hs::writeSafetensors(path, {{"x", DType::F32, {4}, bytesOf(a, sizeof a)}});
  auto first = hs::SafetensorsFile::open(path);
  hs::writeSafetensors(path, {{"x", DType::F32, {4}, bytesOf(b, sizeof b)}});
  CHECK(std::memcmp(first->find("x")->data, a, sizeof a) == 0);
  auto second = hs::SafetensorsFile::open(path);
  CHECK(std::memcmp(second->find("x")->data, b, sizeof b) == 0);
  // No temp files are left behind.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 1);
}

TEST_CASE("safetensors: the writer refuses inconsistent input", "[formats][safetensors]") {
  ScratchDir dir;
  const std::string path = dir.file("w.safetensors");
  using T = hs::TensorToWrite;
  requireError(
      [&] {
        hs::writeSafetensors(path, {T{"x", DType::F32, {2}, std::vector<std::byte>(4)}});
      },
      ErrorKind::InvalidArgument, {"x", "needs 8 bytes of F32, given 4"});
  requireError(
      [&] {
        hs::writeSafetensors(path, {T{"x", DType::U8, {1}, std::vector<std::byte>(1)},
                                    T{"x", DType::U8, {1}, std::vector<std::byte>(1)}});
      },
      ErrorKind::InvalidArgument, {"duplicate tensor name"});
  requireError(
      [&] {
        hs::writeSafetensors(path, {T{"__metadata__", DType::U8, {0}, {}}});
      },
      ErrorKind::InvalidArgument, {"invalid tensor name"});
  requireError(
      [&] {
        hs::writeSafetensors(path, {T{"x", DType::U8, {-1}, {}}});
      },
      ErrorKind::InvalidArgument, {"negative or overflowing shape"});
  CHECK_FALSE(std::filesystem::exists(path));
}
