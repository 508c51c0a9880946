// tokenizer.json "normalizer": text rewrites applied before pre-tokenization (NFC, Replace, ...).
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace hs::tok {

class SplitRegex;

// One normalizer of HF tokenizers; `apply` rewrites valid UTF-8 text in place.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
};

// {"String": s} or {"Regex": r} as used by Replace and Split; errors name file and field.
std::unique_ptr<SplitRegex> parsePattern(const nlohmann::json& spec, const std::string& file,
                                         const std::string& field);
// Builds the normalizer described by `spec` (nullptr for JSON null). Supported types: NFC, NFD,
// NFKC, NFKD, Lowercase, Replace, Prepend, Strip, Sequence; others -> Unsupported naming the type.
std::unique_ptr<Normalizer> parseNormalizer(const nlohmann::json& spec, const std::string& file);

}  // namespace hs::tok
