#include "inference/tokenizers/byte_level.h"

#include <array>
#include <unordered_map>

#include "inference/tokenizers/utf8_text.h"

namespace hs::tok {
namespace {

// The table of tokenizers/src/pre_tokenizers/byte_level.rs (bytes_char): printable Latin-1 bytes
// stand for themselves, the other 68 bytes take U+0100.. in byte order.
struct ByteTable {
  std::array<std::string, 256> byteToText;
  std::unordered_map<char32_t, unsigned char> charToByte;
  ByteTable() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? static_cast<char32_t>(b) : next++;
      appendUtf8(byteToText[b], cp);
      charToByte[cp] = static_cast<unsigned char>(b);
    }
  }
};

const ByteTable& table() {
  static const ByteTable t;
  return t;
}

}  // namespace

std::string byteLevelEncode(std::string_view text) {
  const auto& t = table();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += t.byteToText[static_cast<unsigned char>(c)];
  return out;
}

std::optional<std::string> byteLevelDecodeToken(std::string_view token) {
  const auto& t = table();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    if (utf8SequenceLength(token, i) == 0) return std::nullopt;
    const auto it = t.charToByte.find(nextCodePoint(token, i));
    if (it == t.charToByte.end()) return std::nullopt;
    out += static_cast<char>(it->second);
  }
  return out;
}

}  // namespace hs::tok
