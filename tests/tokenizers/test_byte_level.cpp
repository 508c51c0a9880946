// GPT-2's byte table: known stand-ins (Ġ for space, Ċ for newline, Ń for the soft hyphen) and a
// round trip of all 256 bytes.
#include "inference/tokenizers/byte_level.h"
#include "tests/catch.hpp"

using namespace hs::tok;

TEST_CASE("bytes map to GPT-2's printable stand-ins", "[byte_level]") {
  CHECK(byteLevelEncode(" ") == "\xC4\xA0");                   // Ġ U+0120
  CHECK(byteLevelEncode("\n") == "\xC4\x8A");                  // Ċ U+010A
  CHECK(byteLevelEncode("\t") == "\xC4\x89");                  // ĉ U+0109
  CHECK(byteLevelEncode(std::string(1, '\0')) == "\xC4\x80");  // Ā U+0100
  CHECK(byteLevelEncode("\x7F") == "\xC4\xA1");                // ġ U+0121
  CHECK(byteLevelEncode("\xAD") == "\xC5\x83");                // Ń U+0143
  CHECK(byteLevelEncode("\xFF") == "\xC3\xBF");                // ÿ stays itself
  CHECK(byteLevelEncode("az~!") == "az~!");
  CHECK(byteLevelEncode("\xC3\xA9") == "\xC3\x83\xC2\xA9");  // é's bytes C3 A9 -> Ã ©
}

TEST_CASE("every byte round-trips; foreign characters are refused", "[byte_level]") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const auto mapped = byteLevelEncode(all);
  CHECK(byteLevelDecodeToken(mapped) == std::optional<std::string>(all));
  CHECK(byteLevelDecodeToken("\xC4\xA0hello") == std::optional<std::string>(" hello"));
  CHECK_FALSE(byteLevelDecodeToken("hello world").has_value());   // a plain space is no stand-in
  CHECK_FALSE(byteLevelDecodeToken("\xE4\xBD\xA0").has_value());  // 你 is not in the table
}
