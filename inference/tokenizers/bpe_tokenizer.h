// Tokenizer for tokenizer.json files holding a byte-level BPE (GPT-2, Llama 3, Qwen2 families).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "inference/tokenizers/added_tokens.h"
#include "inference/tokenizers/bpe_model.h"
#include "inference/tokenizers/normalizer.h"
#include "inference/tokenizers/post_processor.h"
#include "inference/tokenizers/pre_tokenizer.h"
#include "inference/tokenizers/tokenizer.h"
#include "inference/tokenizers/tokenizer_config.h"

namespace hs::tok {

// Empty when `root` (a parsed tokenizer.json) holds a BPE model with a ByteLevel pre-tokenizer;
// otherwise a short description of what it holds, e.g. "BPE model with Metaspace pre-tokenizer".
std::string notByteLevelBpe(const nlohmann::json& root);

// HF tokenizers pipeline: added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor.
class BpeTokenizer : public Tokenizer {
 public:
  // Validates everything at load (reliability.md section 5 C): version, component types, merges,
  // ids without conflicts or holes, special tokens present. `config` comes from the same directory.
  BpeTokenizer(const nlohmann::json& root, const std::string& file, const SpecialTokenConfig& config);

  std::vector<TokenId> encode(std::string_view text, bool addSpecialTokens = true) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skipSpecialTokens = false) const override;
  std::string tokenText(TokenId id) const override;
  int64_t vocabSize() const override { return static_cast<int64_t>(tokenById_.size()); }
  std::optional<TokenId> bosId() const override { return bos_; }
  std::vector<TokenId> eosIds() const override { return eos_; }
  bool isSpecial(TokenId id) const override;
  std::string kind() const override { return kind_; }

 private:
  void loadAddedTokens(const nlohmann::json& root, const SpecialTokenConfig& config);
  void resolveSpecialTokens(const SpecialTokenConfig& config, const nlohmann::json& root);
  void encodePlain(std::string_view text, std::vector<TokenId>& ids) const;
  TokenId requireTokenId(const std::string& content, const std::string& file, const std::string& field) const;

  std::string file_, kind_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> preTokenizer_;
  std::unique_ptr<PostProcessor> postProcessor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unique_ptr<AddedTokenMatcher> rawMatcher_, normalizedMatcher_;
  std::vector<std::string> tokenById_;       // vocab entry or added token content
  std::vector<std::string> decodeTextById_;  // what the decoder sees (normalized added tokens)
  std::vector<bool> special_;
  std::optional<TokenId> bos_;
  std::vector<TokenId> eos_;
};

}  // namespace hs::tok
