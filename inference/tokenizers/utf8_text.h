// UTF-8 primitives shared by the tokenizer stages (validation, code points, lossy decoding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hs::tok {

// Length in bytes of the well-formed UTF-8 sequence starting at s[i], or 0 when it is ill-formed.
size_t utf8SequenceLength(std::string_view s, size_t i);
// Byte offset of the first ill-formed sequence, or npos when `s` is valid UTF-8.
size_t firstInvalidUtf8(std::string_view s);
// Decodes the code point at s[i] (which must start a well-formed sequence) and advances i.
char32_t nextCodePoint(std::string_view s, size_t& i);
// Appends the UTF-8 encoding of `cp` to `out`.
void appendUtf8(std::string& out, char32_t cp);
// Bytes -> text where each maximal ill-formed subsequence becomes U+FFFD, exactly like Rust's
// String::from_utf8_lossy (which HF decoders use).
std::string utf8Lossy(std::string_view bytes);
// Unicode White_Space property (what Rust's char::is_whitespace and regex \s use).
bool isUnicodeWhitespace(char32_t cp);
// Rust regex \w: alphabetic, marks, decimal digits, connector punctuation, join controls.
bool isWordChar(char32_t cp);

}  // namespace hs::tok
