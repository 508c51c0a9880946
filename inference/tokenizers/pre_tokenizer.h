// tokenizer.json "pre_tokenizer": splits normalized text into words for the BPE model.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace hs::tok {

// One pre-tokenizer of HF tokenizers. Turns each piece of `pieces` into zero or more pieces
// (empty pieces are dropped, as HF does).
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void split(std::vector<std::string>& pieces) const = 0;
};

// What the pre-tokenizer chain looks like, for kind() and for choosing the loader.
struct PreTokenizerTraits {
  bool byteLevel = false;         // a ByteLevel step maps bytes to GPT-2's printable characters
  std::string family;             // "gpt2", "llama3", "qwen2", "custom regex", or "" when none
  bool parityUnverified = false;  // a Split regex we do not know from a supported family
};

// Builds the pre-tokenizer described by `spec` (nullptr for JSON null) and fills `traits`.
// Supported types: ByteLevel, Split, Digits, Sequence; others -> Unsupported naming the type.
std::unique_ptr<PreTokenizer> parsePreTokenizer(const nlohmann::json& spec, const std::string& file,
                                                PreTokenizerTraits& traits);

// The pattern ByteLevel uses when use_regex is true (GPT-2's).
extern const char* const kGpt2Pattern;

}  // namespace hs::tok
