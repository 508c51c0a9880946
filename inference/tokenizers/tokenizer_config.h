// What a model directory says about special tokens outside the tokenizer file itself:
// tokenizer_config.json, generation_config.json and config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "inference/tokenizers/added_tokens.h"

namespace hs::tok {

// A special token named by tokenizer_config.json, with the key it came from (for messages).
struct NamedToken {
  std::string field;    // e.g. "bos_token"
  std::string content;  // e.g. "<s>"
};

struct SpecialTokenConfig {
  std::string configFile;                        // tokenizer_config.json path ("" when absent)
  std::optional<bool> addBosToken, addEosToken;  // only when given explicitly
  std::optional<std::string> bosToken, eosToken;
  std::optional<bool> legacy;                  // LlamaTokenizer's "legacy" (SentencePiece prefix handling)
  std::vector<NamedToken> namedTokens;         // bos/eos/unk/pad/sep/cls/mask and additional/extra specials
  std::vector<AddedToken> addedTokensDecoder;  // "added_tokens_decoder" entries
  // eos_token_id of generation_config.json and config.json (int or list), with their paths.
  std::vector<std::pair<std::string, int64_t>> eosIdsFromModel;
};

// Reads the optional files next to the tokenizer in `dir`; missing files are fine, malformed
// ones are Corrupt naming file and key.
SpecialTokenConfig readSpecialTokenConfig(const std::string& dir);

}  // namespace hs::tok
