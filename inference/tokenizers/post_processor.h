// tokenizer.json "post_processor" (and decoder): special tokens around the ids, ids back to text.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "inference/tokenizers/tokenizer.h"

namespace hs::tok {

// Adds the special tokens of a single sequence (HF PostProcessor with add_special_tokens).
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual std::vector<TokenId> apply(std::vector<TokenId> ids) const = 0;
  // Ids this processor puts before / after the sequence (for bosId and tests).
  virtual std::vector<TokenId> prefixIds() const = 0;
  virtual std::vector<TokenId> suffixIds() const = 0;
};

// Builds the post-processor of `spec` (nullptr for JSON null). Supported: TemplateProcessing,
// ByteLevel, BertProcessing, RobertaProcessing, Sequence. `vocabSize` bounds the ids it names.
std::unique_ptr<PostProcessor> parsePostProcessor(const nlohmann::json& spec, const std::string& file,
                                                  int64_t vocabSize);
// The "[prefix] $A [suffix]" template transformers v5 installs when add_bos_token/add_eos_token
// are given in tokenizer_config.json (TokenizersBackend.update_post_processor).
std::unique_ptr<PostProcessor> makeAffixProcessor(std::vector<TokenId> prefix, std::vector<TokenId> suffix);

// Turns token strings back into text (HF Decoder::decode_chain, then concatenation).
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};

// Builds the decoder of `spec` (nullptr for JSON null). Supported: ByteLevel, Replace,
// ByteFallback, Fuse, Strip, Sequence.
std::unique_ptr<Decoder> parseDecoder(const nlohmann::json& spec, const std::string& file);

}  // namespace hs::tok
