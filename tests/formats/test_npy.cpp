#include <cmath>
#include <limits>

#include "inference/formats/npy.h"
#include "tests/formats/scratch_dir.h"

using hs::ErrorKind;
using hs::test::fixture;
using hs::test::requireError;
using hs::test::ScratchDir;

namespace {
// Fixtures written by NumPy 1.24 (tests/fixtures/formats/make_npy_fixtures.py).
std::string npy(const std::string& name) {
  return fixture("formats/npy/" + name);
}

std::string npyHeader(int major, const std::string& dict) {
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  const std::string text = dict + "\n";
  if (major == 1) {
    out += static_cast<char>(text.size() & 0xff);
    out += static_cast<char>(text.size() >> 8);
  } else {
    out += hs::test::le64(text.size()).substr(0, 4);
  }
  return out + text;
}
}  // namespace

TEST_CASE("npy: reads every supported dtype as NumPy wrote it", "[formats][npy]") {
  auto a = hs::readNpy(npy("f4_2x3.npy"));
  CHECK(a.descr == "<f4");
  CHECK(a.shape == std::vector<int64_t>{2, 3});
  CHECK(a.numel() == 6);
  CHECK(a.path == npy("f4_2x3.npy"));
  CHECK(a.asFloat() == std::vector<float>{-1.f, -0.5f, 0.f, 0.5f, 1.f, 1.5f});

  a = hs::readNpy(npy("f8_4.npy"));
  CHECK(a.descr == "<f8");
  const auto f8 = a.asFloat();
  REQUIRE(f8.size() == 4);
  CHECK(f8[0] == 1.5f);
  CHECK(f8[1] == -2.25f);
  CHECK(std::isinf(f8[2]));  // 1e300 does not fit a float
  CHECK(std::signbit(f8[3]));

  a = hs::readNpy(npy("f2_6.npy"));
  CHECK(a.descr == "<f2");
  const auto f2 = a.asFloat();
  REQUIRE(f2.size() == 6);
  CHECK(f2[0] == 1.f);
  CHECK(f2[1] == -2.f);
  CHECK(f2[2] == 65504.f);
  CHECK(f2[3] == std::ldexp(1.f, -24));  // 6e-8 rounds to the smallest subnormal
  CHECK(f2[4] == std::numeric_limits<float>::infinity());
  CHECK(f2[5] == 0.333251953125f);

  a = hs::readNpy(npy("i8_3.npy"));
  CHECK(a.asInt() == std::vector<int64_t>{-(int64_t{1} << 62), 0, (int64_t{1} << 62) + 5});
  a = hs::readNpy(npy("i4_2x2.npy"));
  CHECK(a.shape == std::vector<int64_t>{2, 2});
  CHECK(a.asInt() == std::vector<int64_t>{-1, 2, 2147483647, -2147483648LL});
  CHECK(hs::readNpy(npy("i2_3.npy")).asInt() == std::vector<int64_t>{-32768, 7, 32767});
  a = hs::readNpy(npy("u1_4.npy"));
  CHECK(a.descr == "|u1");
  CHECK(a.asInt() == std::vector<int64_t>{0, 1, 200, 255});
  a = hs::readNpy(npy("b1_3.npy"));
  CHECK(a.descr == "|b1");
  CHECK(a.asInt() == std::vector<int64_t>{1, 0, 1});
}

TEST_CASE("npy: scalars, empty arrays and format versions 2 and 3", "[formats][npy]") {
  auto a = hs::readNpy(npy("f4_scalar.npy"));
  CHECK(a.shape.empty());
  CHECK(a.numel() == 1);
  CHECK(a.asFloat() == std::vector<float>{2.5f});
  a = hs::readNpy(npy("f4_0x3.npy"));
  CHECK(a.shape == std::vector<int64_t>{0, 3});
  CHECK(a.numel() == 0);
  CHECK(a.asFloat().empty());
  CHECK(hs::readNpy(npy("f4_v2.npy")).asFloat() == std::vector<float>{7.f, 8.f});
  CHECK(hs::readNpy(npy("f4_v3.npy")).asFloat() == std::vector<float>{7.f, 8.f});
}

TEST_CASE("npy: asking for the wrong kind of values is a mismatch", "[formats][npy]") {
  requireError([] { hs::readNpy(npy("i8_3.npy")).asFloat(); }, ErrorKind::Mismatch, {"i8_3.npy", "<i8"});
  requireError([] { hs::readNpy(npy("f4_2x3.npy")).asInt(); }, ErrorKind::Mismatch, {"f4_2x3.npy", "<f4"});
}

TEST_CASE("npy: the writer produces exactly what NumPy writes", "[formats][npy]") {
  ScratchDir dir;
  const float f[6] = {1, 2, 3, 4, 5, 6};
  hs::writeNpy(dir.file("a.npy"), f, {2, 3});
  CHECK(hs::test::readBytes(dir.file("a.npy")) == hs::test::readBytes(npy("writer_f4_2x3.npy")));
  const int64_t i[4] = {-1, 0, 1, int64_t{1} << 40};
  hs::writeNpy(dir.file("b.npy"), i, {4});
  CHECK(hs::test::readBytes(dir.file("b.npy")) == hs::test::readBytes(npy("writer_i8_4.npy")));
  const float s = 3.f;
  hs::writeNpy(dir.file("c.npy"), &s, {});
  CHECK(hs::test::readBytes(dir.file("c.npy")) == hs::test::readBytes(npy("writer_f4_scalar.npy")));
  hs::writeNpy(dir.file("d.npy"), static_cast<const int64_t*>(nullptr), {0});
  CHECK(hs::test::readBytes(dir.file("d.npy")) == hs::test::readBytes(npy("writer_i8_0.npy")));
  // And it round-trips through the reader.
  CHECK(hs::readNpy(dir.file("b.npy")).asInt() == std::vector<int64_t>(i, i + 4));
  requireError(
      [&] {
        hs::writeNpy(dir.file("e.npy"), f, {-2, 3});
      },
      ErrorKind::InvalidArgument, {"e.npy", "shape"});
  requireError([&] { hs::writeNpy(dir.file("e.npy"), static_cast<const float*>(nullptr), {2}); },
               ErrorKind::InvalidArgument, {"e.npy", "no data"});
}

TEST_CASE("npy: broken and unsupported files", "[formats][npy]") {
  struct Row {
    const char* what;
    std::string bytes;
    ErrorKind kind;
    std::vector<std::string> fragments;
  };
  const std::string f4x2 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string eight(8, '\0');
  const std::vector<Row> rows = {
      {"empty", "", ErrorKind::Corrupt, {"\\x93NUMPY magic"}},
      {"not npy", "PK\x03\x04 zip archive", ErrorKind::Corrupt, {"\\x93NUMPY magic"}},
      {"version 4", npyHeader(4, f4x2) + eight, ErrorKind::Unsupported, {"format version 4.0"}},
      {"header past the end",
       std::string("\x93NUMPY\x01\x00\xff\x7f{", 11),
       ErrorKind::Corrupt,
       {"header length 32767 runs past the end"}},
      {"v2 header length near 2^32",
       std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff{", 13),
       ErrorKind::Corrupt,
       {"runs past the end"}},
      {"truncated data",
       npyHeader(1, f4x2) + "abcd",
       ErrorKind::Corrupt,
       {"truncated: expected 8 data bytes", "file has 4"}},
      {"trailing data",
       npyHeader(1, f4x2) + eight + "x",
       ErrorKind::Corrupt,
       {"trailing bytes", "file has 9"}},
      {"missing shape",
       npyHeader(1, "{'descr': '<f4', 'fortran_order': False, }"),
       ErrorKind::Corrupt,
       {"header", "'shape'"}},
      {"unknown key",
       npyHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}") + "abcd",
       ErrorKind::Corrupt,
       {"unexpected key 'x'"}},
      {"not a dict", npyHeader(1, "descr=<f4"), ErrorKind::Corrupt, {"expected '{'"}},
      {"negative dim",
       npyHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"),
       ErrorKind::Corrupt,
       {"non-negative integer"}},
      {"dim overflow",
       npyHeader(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
       ErrorKind::Corrupt,
       {"overflows"}},
      {"size overflow",
       npyHeader(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
       ErrorKind::Corrupt,
       {"shape overflows 64 bits"}},
      {"unterminated string", npyHeader(1, "{'descr: '<f4"), ErrorKind::Corrupt, {"header"}},
      {"bad bool",
       npyHeader(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (), }"),
       ErrorKind::Corrupt,
       {"True or False"}},
  };
  ScratchDir dir;
  for (const auto& r : rows) {
    SECTION(r.what) {
      const std::string path = dir.file("broken.npy");
      hs::test::writeBytes(path, r.bytes);
      std::vector<std::string> fragments = r.fragments;
      fragments.push_back(path);
      requireError([&] { hs::readNpy(path); }, r.kind, fragments);
    }
  }
  SECTION("NumPy files HeadScope does not read") {
    requireError([] { hs::readNpy(npy("f4_fortran.npy")); }, ErrorKind::Unsupported, {"fortran_order"});
    requireError([] { hs::readNpy(npy("f4_bigendian.npy")); }, ErrorKind::Unsupported, {"'>f4'"});
    requireError([] { hs::readNpy(npy("c8_2.npy")); }, ErrorKind::Unsupported, {"'<c8'"});
    requireError([&] { hs::readNpy(dir.file("absent.npy")); }, ErrorKind::Io, {"absent.npy"});
  }
}
