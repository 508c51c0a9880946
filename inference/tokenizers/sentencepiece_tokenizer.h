// Tokenizer for SentencePiece tokenizer.model files (Llama 2, Mistral v0.1), via the library.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "inference/tokenizers/added_tokens.h"
#include "inference/tokenizers/tokenizer.h"
#include "inference/tokenizers/tokenizer_config.h"

namespace hs::tok {

class SpmProcessor;

// SentencePiece ids as transformers' LlamaTokenizer gives them: BOS prepended unless add_bos_token
// is false, EOS appended when add_eos_token is true, control tokens written in the text split out
// first, and "▁" prepended like Metaspace: never to a piece already starting with a space, and
// with legacy=false only at the very start of the text (prepend_scheme "first").
class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& modelFile, const SpecialTokenConfig& config);
  ~SentencePieceTokenizer() override;

  std::vector<TokenId> encode(std::string_view text, bool addSpecialTokens = true) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skipSpecialTokens = false) const override;
  std::string tokenText(TokenId id) const override;
  int64_t vocabSize() const override;
  std::optional<TokenId> bosId() const override { return bos_; }
  std::vector<TokenId> eosIds() const override { return eos_; }
  bool isSpecial(TokenId id) const override;
  std::string kind() const override { return "SentencePiece (tokenizer.model)"; }

 private:
  TokenId requirePiece(const std::string& piece, const std::string& file, const std::string& field) const;

  std::string file_;
  std::unique_ptr<SpmProcessor> sp_;
  std::unique_ptr<SpmProcessor> noPrefix_;  // the same model with add_dummy_prefix off
  std::unique_ptr<AddedTokenMatcher> specials_;
  bool addBos_ = true, addEos_ = false, legacy_ = true;
  std::optional<TokenId> bos_;
  std::vector<TokenId> eos_;
};

}  // namespace hs::tok
