// UTF-8 primitives against Unicode's well-formedness table and Rust's from_utf8_lossy results.
#include "inference/tokenizers/utf8_text.h"
#include "tests/catch.hpp"

using namespace hs::tok;

TEST_CASE("well-formed UTF-8 sequences are recognised", "[utf8_text]") {
  struct Row {
    std::string bytes;
    size_t firstInvalid;
  };
  const size_t ok = std::string_view::npos;
  const std::vector<Row> rows = {
      {"plain ascii", ok},
      {"\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80", ok},  // é 你 😀
      {"\xF4\x8F\xBF\xBF", ok},                      // U+10FFFF
      {"a\xC0\x80", 1},                              // overlong NUL
      {"ab\xED\xA0\x80", 2},                         // surrogate U+D800
      {"\xF4\x90\x80\x80", 0},                       // above U+10FFFF
      {"\xE4\xBD", 0},                               // truncated
      {"x\x80", 1},                                  // lone continuation byte
      {"\xFF", 0},
  };
  for (const auto& row : rows) {
    INFO(row.bytes);
    CHECK(firstInvalidUtf8(row.bytes) == row.firstInvalid);
  }
}

TEST_CASE("lossy decoding replaces each maximal ill-formed subpart by one U+FFFD", "[utf8_text]") {
  const std::string R = "\xEF\xBF\xBD";
  // Expected values are what Rust's String::from_utf8_lossy returns (its documentation and the
  // Unicode "substitution of maximal subparts" practice).
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"Hello \xF0\x90\x80World", "Hello " + R + "World"},
      {"\xED\xA0\x80", R + R + R},
      {"\xC0\x80", R + R},
      {"\xF4\x90\x80\x80", R + R + R + R},
      {"a\xE2\x82", "a" + R},
      {"\xE2\x82\xAC", "\xE2\x82\xAC"},
      {"\xF0\x9F\x98", R},
  };
  for (const auto& [in, out] : rows) CHECK(utf8Lossy(in) == out);
}

TEST_CASE("code points, whitespace and word characters", "[utf8_text]") {
  const std::string s = "a\xC3\xA9\xF0\x9F\x98\x80";
  size_t i = 0;
  CHECK(nextCodePoint(s, i) == U'a');
  CHECK(nextCodePoint(s, i) == 0xE9);
  CHECK(nextCodePoint(s, i) == 0x1F600);
  CHECK(i == s.size());
  std::string out;
  for (char32_t cp : std::vector<char32_t>{U'a', char32_t(0xE9), char32_t(0x4F60), char32_t(0x1F600)})
    appendUtf8(out, cp);
  CHECK(out == "a\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80");
  for (char32_t ws : std::vector<char32_t>{0x09, 0x0A, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028,
                                           0x202F, 0x3000})
    CHECK(isUnicodeWhitespace(ws));
  for (char32_t no : std::vector<char32_t>{0x200B, 0x180E, 0xFEFF, U'a'})
    CHECK_FALSE(isUnicodeWhitespace(no));
  for (char32_t w : std::vector<char32_t>{U'a', U'Z', U'_', U'7', char32_t(0xE9), char32_t(0x301),
                                          char32_t(0x4F60), char32_t(0x200D)})
    CHECK(isWordChar(w));
  for (char32_t no : std::vector<char32_t>{U'-', U' ', U'\'', char32_t(0x1F600)}) CHECK_FALSE(isWordChar(no));
}
