// GPT-2's reversible byte <-> printable-character table used by byte-level BPE.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hs::tok {

// Maps every byte of `text` to its printable stand-in character (space -> "Ġ", '\n' -> "Ċ").
std::string byteLevelEncode(std::string_view text);
// Inverse for one token: its bytes when every character is a stand-in, else nullopt (HF then keeps
// the token's own UTF-8 bytes, e.g. for added tokens containing plain spaces).
std::optional<std::string> byteLevelDecodeToken(std::string_view token);

}  // namespace hs::tok
