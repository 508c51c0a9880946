#include "inference/tokenizers/bpe_model.h"

#include <fmt/format.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>

#include "inference/tokenizers/json_fields.h"
#include "inference/tokenizers/utf8_text.h"
#include "kernels/core/error.h"

namespace hs::tok {
namespace {

// Ids beyond the vocabulary size by more than this cannot be explained by added tokens; refusing
// them keeps the id -> token table from being sized by a corrupt file.
constexpr int64_t kMaxIdSlack = 1 << 16;
// HF caches words shorter than 256 bytes (tokenizers/src/models/bpe/model.rs MAX_LENGTH).
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 200000;

bool isUpperHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

struct Symbol {
  TokenId id;
  int prev, next;
  bool removed;
};

struct MergeCandidate {
  uint32_t rank;
  int pos;
  TokenId merged;
  // std::priority_queue is a max-heap: invert so the lowest rank, then leftmost, comes first.
  bool operator<(const MergeCandidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

uint64_t pairKey(TokenId a, TokenId b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& spec, const std::string& file) {
  const auto vocabIt = spec.find("vocab");
  check(vocabIt != spec.end() && vocabIt->is_object(), ErrorKind::Corrupt,
        "BPE model needs a 'vocab' object of token -> id", file, "model.vocab");
  int64_t maxId = -1;
  for (const auto& [token, idJson] : vocabIt->items()) {
    if (!idJson.is_number_integer())
      throw Error(ErrorKind::Corrupt,
                  fmt::format("id of '{}' must be an integer, found {}", token, shortJson(idJson)), file,
                  "model.vocab");
    const int64_t id = idJson.get<int64_t>();
    if (!(id >= 0 && id <= INT32_MAX))
      throw Error(ErrorKind::Corrupt, fmt::format("id of '{}' must be in [0, 2^31), found {}", token, id),
                  file, "model.vocab");
    maxId = std::max(maxId, id);
    vocab_.emplace(token, static_cast<TokenId>(id));
  }
  const int64_t vocabCount = static_cast<int64_t>(vocab_.size());
  if (maxId >= vocabCount + kMaxIdSlack)
    throw Error(
        ErrorKind::Corrupt,
        fmt::format("largest id {} leaves most ids unused: the vocab has {} entries", maxId, vocabCount),
        file, "model.vocab");
  byId_.resize(static_cast<size_t>(maxId + 1));
  for (const auto& [token, id] : vocab_) {
    if (byId_[id].has_value())
      throw Error(ErrorKind::Corrupt,
                  fmt::format("id {} is given to both '{}' and '{}'", id, *byId_[id], token), file,
                  "model.vocab");
    byId_[id] = token;
  }

  const std::string unk = optionalString(spec, "unk_token", "", file, "model.unk_token");
  if (!unk.empty()) {
    unkId_ = idOf(unk);
    if (!unkId_.has_value())
      throw Error(ErrorKind::Corrupt, fmt::format("unk_token '{}' is not in the vocab", unk), file,
                  "model.unk_token");
  }
  continuingPrefix_ =
      optionalString(spec, "continuing_subword_prefix", "", file, "model.continuing_subword_prefix");
  endOfWordSuffix_ = optionalString(spec, "end_of_word_suffix", "", file, "model.end_of_word_suffix");
  fuseUnk_ = optionalBool(spec, "fuse_unk", false, file, "model.fuse_unk");
  byteFallback_ = optionalBool(spec, "byte_fallback", false, file, "model.byte_fallback");
  ignoreMerges_ = optionalBool(spec, "ignore_merges", false, file, "model.ignore_merges");
  if (spec.contains("dropout") && !spec["dropout"].is_null()) {
    if (!(spec["dropout"].is_number() && spec["dropout"].get<double>() == 0.0))
      throw Error(ErrorKind::Unsupported,
                  fmt::format("BPE dropout {} makes encoding random; only 0 or null is supported",
                              shortJson(spec["dropout"])),
                  file, "model.dropout");
  }

  if (byteFallback_) {
    // "<0xNN>" tokens are parsed back into bytes by decoders, so a malformed one is a corrupt vocab.
    byteTokens_.assign(256, -1);
    for (const auto& [token, id] : vocab_) {
      if (token.size() < 4 || token.compare(0, 3, "<0x") != 0 || token.back() != '>') continue;
      if (!(token.size() == 6 && isUpperHex(token[3]) && isUpperHex(token[4])))
        throw Error(ErrorKind::Corrupt,
                    fmt::format("byte-fallback token '{}' (id {}) is malformed: expected <0xNN> with two "
                                "uppercase hex digits",
                                token, id),
                    file, "model.vocab");
      byteTokens_[std::stoi(token.substr(3, 2), nullptr, 16)] = id;
    }
  }

  const auto mergesIt = spec.find("merges");
  check(mergesIt != spec.end() && mergesIt->is_array(), ErrorKind::Corrupt,
        "BPE model needs a 'merges' array", file, "model.merges");
  merges_.reserve(mergesIt->size());
  for (size_t i = 0; i < mergesIt->size(); ++i) {
    const auto& m = (*mergesIt)[i];
    const std::string field = fmt::format("model.merges[{}]", i);
    std::string left, right;
    if (m.is_string()) {
      const auto line = m.get<std::string>();
      const size_t space = line.find(' ');
      if (!(space != std::string::npos && line.find(' ', space + 1) == std::string::npos))
        throw Error(
            ErrorKind::Corrupt,
            fmt::format(
                "legacy merge \"{}\" must hold exactly one space (tokens with spaces need the [a, b] form)",
                line),
            file, field);
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else {
      if (!(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()))
        throw Error(ErrorKind::Corrupt,
                    fmt::format("merge must be \"a b\" or [\"a\", \"b\"], found {}", shortJson(m)), file,
                    field);
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    }
    const auto a = idOf(left), b = idOf(right);
    if (!a.has_value())
      throw Error(ErrorKind::Corrupt, fmt::format("merge names '{}', which is not in the vocab", left), file,
                  field);
    if (!b.has_value())
      throw Error(ErrorKind::Corrupt, fmt::format("merge names '{}', which is not in the vocab", right), file,
                  field);
    std::string rightPart = right;
    if (!continuingPrefix_.empty() && right.compare(0, continuingPrefix_.size(), continuingPrefix_) == 0) {
      rightPart = right.substr(continuingPrefix_.size());
    }
    const auto merged = idOf(left + rightPart);
    if (!merged.has_value())
      throw Error(ErrorKind::Corrupt,
                  fmt::format("merged token '{}' of merge ('{}', '{}') is not in the vocab", left + rightPart,
                              left, right),
                  file, field);
    // A repeated pair takes its last rank, as HF's map-building does.
    merges_[pairKey(*a, *b)] = {static_cast<uint32_t>(i), *merged};
  }
}

std::optional<TokenId> BpeModel::idOf(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::tokenizeWord(std::string_view word, std::vector<TokenId>& out) const {
  if (word.empty()) return;
  if (ignoreMerges_) {
    if (const auto id = idOf(word)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() < kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::shared_lock lock(cacheMutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<TokenId> ids = mergeWord(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cacheMutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
  }
}

// Mirrors BPE::merge_word + Word::merge_all (tokenizers/src/models/bpe): characters become
// symbols (with prefix/suffix, byte fallback, fused unk), then the lowest-ranked adjacent pair is
// merged repeatedly, leftmost first, using a heap so long runs stay O(n log n).
std::vector<TokenId> BpeModel::mergeWord(std::string_view word) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  TokenId pendingUnk = -1;  // an unk waiting to be emitted (fused with following unknowns)
  auto add = [&](TokenId id) {
    const int idx = static_cast<int>(symbols.size());
    symbols.push_back({id, idx - 1, idx + 1, false});
  };
  std::string piece;
  for (size_t i = 0; i < word.size();) {
    const size_t start = i;
    size_t n = utf8SequenceLength(word, i);
    if (n == 0) n = 1;
    i += n;
    const bool isFirst = start == 0, isLast = i >= word.size();
    piece.clear();
    if (!isFirst) piece += continuingPrefix_;
    piece.append(word.substr(start, n));
    if (isLast) piece += endOfWordSuffix_;
    if (const auto id = idOf(piece)) {
      if (pendingUnk >= 0) add(pendingUnk);
      pendingUnk = -1;
      add(*id);
      continue;
    }
    if (byteFallback_) {
      bool all = true;
      for (char c : piece) all = all && byteTokens_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // HF adds byte tokens without flushing a pending unk first.
        for (char c : piece) add(byteTokens_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unkId_) {
      if (pendingUnk >= 0 && !fuseUnk_) add(pendingUnk);
      pendingUnk = *unkId_;
    }
  }
  if (pendingUnk >= 0) add(pendingUnk);
  if (symbols.empty()) return {};
  symbols.back().next = -1;

  std::priority_queue<MergeCandidate> queue;
  auto push = [&](int pos) {
    const int next = symbols[pos].next;
    if (next < 0) return;
    const auto it = merges_.find(pairKey(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int pos = 0; pos + 1 < static_cast<int>(symbols.size()); ++pos) push(pos);
  while (!queue.empty()) {
    const MergeCandidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const auto it = merges_.find(pairKey(left.id, right.id));
    if (it == merges_.end() || it->second.second != top.merged) continue;  // stale entry
    left.id = top.merged;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  std::vector<TokenId> ids;
  for (int pos = 0; pos >= 0; pos = symbols[pos].next) ids.push_back(symbols[pos].id);
  return ids;
}

}  // namespace hs::tok
