// The BPE model of tokenizer.json: vocabulary, ranked merges, and word -> ids with a cache.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "inference/tokenizers/tokenizer.h"

namespace hs::tok {

// Validated BPE model (tokenizer.json "model" with type BPE). Thread-safe tokenizeWord.
class BpeModel {
 public:
  // Parses and checks `spec`: merges (both formats) must name vocab tokens, unk must exist, ids
  // must be unique and non-negative. Errors are Corrupt/Unsupported naming `file` and the field.
  BpeModel(const nlohmann::json& spec, const std::string& file);

  // Appends the ids of one pre-tokenized word (HF BPE::tokenize semantics) to `out`.
  void tokenizeWord(std::string_view word, std::vector<TokenId>& out) const;
  std::optional<TokenId> idOf(std::string_view token) const;
  // Vocabulary entries by id; ids missing from the vocab map to nullopt.
  const std::vector<std::optional<std::string>>& tokensById() const { return byId_; }
  bool byteFallback() const { return byteFallback_; }

 private:
  std::vector<TokenId> mergeWord(std::string_view word) const;

  std::unordered_map<std::string, TokenId> vocab_;
  std::vector<std::optional<std::string>> byId_;
  // (left id << 32 | right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<uint32_t, TokenId>> merges_;
  std::optional<TokenId> unkId_;
  std::string continuingPrefix_, endOfWordSuffix_;
  bool fuseUnk_ = false, byteFallback_ = false, ignoreMerges_ = false;
  std::vector<TokenId> byteTokens_;  // "<0xNN>" ids for byte_fallback, -1 where absent

  // Word cache (HF caches words under 256 bytes, as here); bounded so huge inputs cannot grow it.
  mutable std::shared_mutex cacheMutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

}  // namespace hs::tok
