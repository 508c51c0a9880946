// Added tokens of tokenizer.json: matched in the raw (or normalized) text before anything else.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inference/tokenizers/tokenizer.h"

namespace hs::tok {

// One "added_tokens" entry (HF AddedToken).
struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool singleWord = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A piece of text: either an added token's id, or plain text still to be tokenized.
struct TextSegment {
  std::string_view text;
  std::optional<TokenId> token;
};

// Leftmost-longest matcher over a set of patterns (HF AddedVocabulary::find_matches semantics:
// single_word boundaries, lstrip/rstrip whitespace absorption).
class AddedTokenMatcher {
 public:
  // `patterns[i]` is what token `tokens[i]` matches (its content, or its normalized form).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  // Splits `text` into segments covering it entirely, in order.
  std::vector<TextSegment> split(std::string_view text) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  // For each first byte, indices into tokens_ ordered by pattern length, longest first.
  std::vector<std::vector<size_t>> byFirstByte_;
};

}  // namespace hs::tok
