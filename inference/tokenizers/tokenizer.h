// Text <-> token ids, with the same ids as Hugging Face tokenizers for the supported kinds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hs {

using TokenId = int32_t;

// A loaded tokenizer. Implementations: byte-level BPE from tokenizer.json, SentencePiece from
// tokenizer.model. Thread-safe for concurrent encode/decode after construction.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids for `text`; with addSpecialTokens the post-processor runs (e.g. BOS prepended), exactly
  // like HF `tokenizer(text)["input_ids"]`.
  virtual std::vector<TokenId> encode(std::string_view text, bool addSpecialTokens = true) const = 0;
  // Text for ids; special tokens are dropped when skipSpecialTokens.
  virtual std::string decode(const std::vector<TokenId>& ids, bool skipSpecialTokens = false) const = 0;
  // The vocabulary entry of one id, as stored (e.g. "Ġthe", "▁the", "<|begin_of_text|>").
  virtual std::string tokenText(TokenId id) const = 0;
  // Number of ids (base vocabulary plus added tokens): every valid id is below this.
  virtual int64_t vocabSize() const = 0;
  virtual std::optional<TokenId> bosId() const = 0;
  virtual std::vector<TokenId> eosIds() const = 0;
  virtual bool isSpecial(TokenId id) const = 0;
  // Human-readable kind, e.g. "byte-level BPE (tokenizer.json, llama3 pre-tokenizer)"; a Split
  // regex outside the families with stored parity tests adds ", parity unverified".
  virtual std::string kind() const = 0;
};

// Loads the tokenizer of a model directory: tokenizer.json when it holds a byte-level BPE, else
// tokenizer.model (SentencePiece, e.g. Llama 2 whose tokenizer.json is Metaspace BPE), else an
// Unsupported error naming what tokenizer.json holds. tokenizer_config.json, when present,
// supplies add_bos_token/add_eos_token/legacy and the special tokens; generation_config.json and
// config.json add eos ids. Everything is validated at load; errors name the file and field.
std::unique_ptr<Tokenizer> loadTokenizer(const std::string& modelDir);
// Loads a tokenizer from a file: *.json (tokenizer.json format) or *.model (SentencePiece).
// Looks for tokenizer_config.json beside it.
std::unique_ptr<Tokenizer> loadTokenizerFile(const std::string& path);

}  // namespace hs
