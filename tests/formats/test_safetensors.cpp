#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "inference/formats/safetensors.h"
#include "tests/formats/safetensors_cases.h"
#include "tests/formats/scratch_dir.h"

using hs::DType;
using hs::ErrorKind;
using hs::test::entry;
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
  const auto rows = hs::test::acceptedRows();
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
  const auto rows = hs::test::brokenRows();
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

TEST_CASE("safetensors: NaN and Inf values are not a parse error", "[formats][safetensors]") {
  // reliability.md case 13: values are never checked at open (the reference README says so too).
  ScratchDir dir;
  const std::string nanInf = std::string("\x00\x00\xc0\x7f", 4) + std::string("\x00\x00\x80\xff", 4);
  hs::test::writeBytes(dir.file("n.safetensors"),
                       safetensorsImage("{" + entry("w", "F32", "[2]", 0, 8) + "}", nanInf));
  auto file = hs::SafetensorsFile::open(dir.file("n.safetensors"));
  float v[2];
  std::memcpy(v, file->find("w")->data, 8);
  CHECK(std::isnan(v[0]));
  CHECK(std::isinf(v[1]));
}
