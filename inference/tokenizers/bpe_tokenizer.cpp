#include "inference/tokenizers/bpe_tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "inference/tokenizers/json_fields.h"
#include "inference/tokenizers/utf8_text.h"
#include "kernels/core/error.h"

namespace hs::tok {
namespace {

// Inputs are indexed with size_t throughout, but ids and positions downstream are int32: refuse
// texts that could yield more than INT32_MAX tokens (reliability.md case 31).
constexpr size_t kMaxInputBytes = static_cast<size_t>(INT32_MAX);

std::string modelType(const nlohmann::json& root) {
  const auto it = root.find("model");
  if (it == root.end() || !it->is_object()) return "";
  if (it->contains("type") && (*it)["type"].is_string()) return (*it)["type"].get<std::string>();
  // HF infers the model from its fields when "type" is absent; only BPE has "merges".
  return it->contains("merges") ? "BPE" : "";
}

void collectTypes(const nlohmann::json& spec, std::vector<std::string>& types) {
  if (!spec.is_object()) return;
  if (spec.contains("type") && spec["type"].is_string()) types.push_back(spec["type"].get<std::string>());
  if (spec.contains("pretokenizers") && spec["pretokenizers"].is_array()) {
    for (const auto& s : spec["pretokenizers"]) collectTypes(s, types);
  }
}

void checkVersion(const nlohmann::json& root, const std::string& file) {
  const auto it = root.find("version");
  if (it == root.end()) return;  // HF accepts files without a version
  if (!(it->is_string() && it->get<std::string>() == "1.0"))
    throw Error(ErrorKind::Unsupported,
                fmt::format("tokenizer.json version {} is not supported (expected \"1.0\")", shortJson(*it)),
                file, "version");
}

}  // namespace

std::string notByteLevelBpe(const nlohmann::json& root) {
  std::vector<std::string> types;
  if (root.contains("pre_tokenizer")) collectTypes(root["pre_tokenizer"], types);
  const std::string model = modelType(root);
  const bool byteLevel = std::find(types.begin(), types.end(), "ByteLevel") != types.end();
  if (model == "BPE" && byteLevel) return "";
  std::string pre = "no";
  if (!types.empty()) {
    pre.clear();
    for (const auto& t : types) {
      if (t == "Sequence") continue;
      pre += (pre.empty() ? "" : "+") + t;
    }
  }
  return fmt::format("{} model with {} pre-tokenizer", model.empty() ? "unknown" : model, pre);
}

BpeTokenizer::BpeTokenizer(const nlohmann::json& root, const std::string& file,
                           const SpecialTokenConfig& config)
    : file_(file) {
  checkVersion(root, file);
  const std::string type = modelType(root);
  check(root.contains("model") && root["model"].is_object(), ErrorKind::Corrupt, "missing the 'model' object",
        file, "model");
  if (type != "BPE")
    throw Error(ErrorKind::Unsupported,
                fmt::format("model type '{}' is not supported (supported: BPE)",
                            root["model"].value("type", std::string("<none>"))),
                file, "model.type");
  model_ = std::make_unique<BpeModel>(root["model"], file);
  normalizer_ = parseNormalizer(root.value("normalizer", nlohmann::json()), file);
  PreTokenizerTraits traits;
  preTokenizer_ = parsePreTokenizer(root.value("pre_tokenizer", nlohmann::json()), file, traits);
  if (!traits.byteLevel)
    throw Error(ErrorKind::Unsupported,
                fmt::format("tokenizer.json holds a {}, not byte-level BPE", notByteLevelBpe(root)), file,
                "pre_tokenizer");
  decoder_ = parseDecoder(root.value("decoder", nlohmann::json()), file);
  loadAddedTokens(root, config);
  resolveSpecialTokens(config, root);
  kind_ = fmt::format("byte-level BPE (tokenizer.json, {} pre-tokenizer{})", traits.family,
                      traits.parityUnverified ? ", parity unverified" : "");
}

void BpeTokenizer::loadAddedTokens(const nlohmann::json& root, const SpecialTokenConfig& config) {
  std::unordered_map<std::string, size_t> byContent;
  std::unordered_map<TokenId, size_t> byId;
  const auto& vocabById = model_->tokensById();
  auto addToken = [&](AddedToken t, const std::string& file, const std::string& field) {
    if (const auto vocabId = model_->idOf(t.content)) {
      if (*vocabId != t.id)
        throw Error(
            ErrorKind::Corrupt,
            fmt::format("added token '{}' has id {} but the vocab gives it id {}", t.content, t.id, *vocabId),
            file, field);
    } else if (static_cast<size_t>(t.id) < vocabById.size() && vocabById[t.id]) {
      throw Error(ErrorKind::Corrupt,
                  fmt::format("added token '{}' has id {}, which the vocab gives to '{}'", t.content, t.id,
                              *vocabById[t.id]),
                  file, field);
    }
    if (const auto it = byContent.find(t.content); it != byContent.end()) {
      if (added_[it->second].id != t.id)
        throw Error(ErrorKind::Corrupt,
                    fmt::format("added token '{}' has id {} here but id {} in tokenizer.json", t.content,
                                t.id, added_[it->second].id),
                    file, field);
      return;  // same token listed again (tokenizer_config.json repeats tokenizer.json)
    }
    if (const auto it = byId.find(t.id); it != byId.end()) {
      throw Error(
          ErrorKind::Corrupt,
          fmt::format("id {} is given to both '{}' and '{}'", t.id, added_[it->second].content, t.content),
          file, field);
    }
    byContent[t.content] = added_.size();
    byId[t.id] = added_.size();
    added_.push_back(std::move(t));
  };

  const auto list = root.value("added_tokens", nlohmann::json::array());
  check(list.is_array(), ErrorKind::Corrupt, "expected a list", file_, "added_tokens");
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& v = list[i];
    const std::string field = fmt::format("added_tokens[{}]", i);
    if (!(v.is_object() && v.contains("id") && v["id"].is_number_integer()))
      throw Error(ErrorKind::Corrupt,
                  fmt::format("expected {{\"id\": int, \"content\": ...}}, found {}", shortJson(v)), file_,
                  field);
    const int64_t id = v["id"].get<int64_t>();
    if (!(id >= 0 && id <= INT32_MAX))
      throw Error(ErrorKind::Corrupt, fmt::format("id {} is out of range", id), file_, field);
    AddedToken t;
    t.id = static_cast<TokenId>(id);
    t.content = requireString(v, "content", file_, field);
    t.singleWord = optionalBool(v, "single_word", false, file_, field);
    t.lstrip = optionalBool(v, "lstrip", false, file_, field);
    t.rstrip = optionalBool(v, "rstrip", false, file_, field);
    t.special = optionalBool(v, "special", false, file_, field);
    t.normalized = optionalBool(v, "normalized", !t.special, file_, field);
    addToken(std::move(t), file_, field);
  }
  for (const auto& t : config.addedTokensDecoder) {
    addToken(t, config.configFile, "added_tokens_decoder." + std::to_string(t.id));
  }
  // transformers adds the named special tokens of tokenizer_config.json as special added tokens
  // (TokenizersBackend.__init__), so they are split out of the text even when only in the vocab.
  for (const auto& named : config.namedTokens) {
    if (byContent.count(named.content)) continue;
    const auto id = model_->idOf(named.content);
    if (!id.has_value())
      throw Error(ErrorKind::Corrupt,
                  fmt::format("{} '{}' is neither in the vocab nor an added token of {}", named.field,
                              named.content, file_),
                  config.configFile, named.field);
    AddedToken t;
    t.id = *id;
    t.content = named.content;
    t.special = true;
    t.normalized = false;
    addToken(std::move(t), config.configFile, named.field);
  }

  // Every id below the vocabulary size must name a token: ids index the embedding matrix.
  std::vector<TokenId> ids;
  ids.reserve(vocabById.size() + added_.size());
  for (size_t id = 0; id < vocabById.size(); ++id) {
    if (vocabById[id]) ids.push_back(static_cast<TokenId>(id));
  }
  for (const auto& t : added_) {
    if (!model_->idOf(t.content)) ids.push_back(t.id);
  }
  std::sort(ids.begin(), ids.end());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != static_cast<TokenId>(i))
      throw Error(
          ErrorKind::Corrupt,
          fmt::format("id {} belongs to no token (ids must run from 0 to {} without holes; next id is {})", i,
                      ids.size() - 1, ids[i]),
          file_, "model.vocab");
  }
  tokenById_.resize(ids.size());
  decodeTextById_.resize(ids.size());
  special_.assign(ids.size(), false);
  for (size_t id = 0; id < vocabById.size(); ++id) {
    if (vocabById[id]) tokenById_[id] = decodeTextById_[id] = *vocabById[id];
  }
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> rawPatterns, normalizedPatterns;
  for (const auto& t : added_) {
    tokenById_[t.id] = t.content;
    decodeTextById_[t.id] = t.content;
    special_[t.id] = special_[t.id] || t.special;
    if (t.normalized) {
      std::string pattern = t.content;
      if (normalizer_) normalizer_->apply(pattern);
      // HF decodes a normalized added token from its normalized form (simple_id_to_token).
      decodeTextById_[t.id] = pattern;
      normalized.push_back(t);
      normalizedPatterns.push_back(std::move(pattern));
    } else {
      raw.push_back(t);
      rawPatterns.push_back(t.content);
    }
  }
  rawMatcher_ = std::make_unique<AddedTokenMatcher>(std::move(raw), std::move(rawPatterns));
  normalizedMatcher_ =
      std::make_unique<AddedTokenMatcher>(std::move(normalized), std::move(normalizedPatterns));
}

TokenId BpeTokenizer::requireTokenId(const std::string& content, const std::string& file,
                                     const std::string& field) const {
  for (const auto& t : added_) {
    if (t.content == content) return t.id;
  }
  const auto id = model_->idOf(content);
  if (!id.has_value())
    throw Error(ErrorKind::Corrupt, fmt::format("token '{}' is not in the vocabulary", content), file, field);
  return *id;
}

void BpeTokenizer::resolveSpecialTokens(const SpecialTokenConfig& config, const nlohmann::json& root) {
  const int64_t n = vocabSize();
  std::optional<TokenId> bosFromConfig, eosFromConfig;
  if (config.bosToken) bosFromConfig = requireTokenId(*config.bosToken, config.configFile, "bos_token");
  if (config.eosToken) eosFromConfig = requireTokenId(*config.eosToken, config.configFile, "eos_token");
  const auto pp = root.value("post_processor", nlohmann::json());
  // transformers v5 replaces the post-processor when add_bos_token/add_eos_token are given
  // explicitly, or when tokenizer.json has none (TokenizersBackend.update_post_processor).
  if (config.addBosToken || config.addEosToken || pp.is_null()) {
    std::vector<TokenId> prefix, suffix;
    if (config.addBosToken.value_or(false) && bosFromConfig) prefix.push_back(*bosFromConfig);
    if (config.addEosToken.value_or(false) && eosFromConfig) suffix.push_back(*eosFromConfig);
    postProcessor_ = makeAffixProcessor(std::move(prefix), std::move(suffix));
  } else {
    postProcessor_ = parsePostProcessor(pp, file_, n);
  }
  bos_ = bosFromConfig;
  if (!bos_ && !postProcessor_->prefixIds().empty()) bos_ = postProcessor_->prefixIds().front();
  if (eosFromConfig) eos_.push_back(*eosFromConfig);
  for (const auto& [name, id] : config.eosIdsFromModel) {
    if (id >= n)
      throw Error(ErrorKind::Corrupt, fmt::format("eos_token_id {} is outside the vocabulary [0, {})", id, n),
                  name, "eos_token_id");
    if (std::find(eos_.begin(), eos_.end(), static_cast<TokenId>(id)) == eos_.end())
      eos_.push_back(static_cast<TokenId>(id));
  }
}

void BpeTokenizer::encodePlain(std::string_view text, std::vector<TokenId>& ids) const {
  std::string normalized(text);
  if (normalizer_) normalizer_->apply(normalized);
  std::vector<std::string> words;
  for (const auto& segment : normalizedMatcher_->split(normalized)) {
    if (segment.token) {
      ids.push_back(*segment.token);
      continue;
    }
    words.assign(1, std::string(segment.text));
    if (preTokenizer_) preTokenizer_->split(words);
    for (const auto& w : words) model_->tokenizeWord(w, ids);
  }
}

std::vector<TokenId> BpeTokenizer::encode(std::string_view text, bool addSpecialTokens) const {
  if (text.size() > kMaxInputBytes)
    throw Error(ErrorKind::InvalidArgument,
                fmt::format("input of {} bytes is too long to tokenize (limit {} bytes)", text.size(),
                            kMaxInputBytes));
  const size_t bad = firstInvalidUtf8(text);
  if (bad != std::string_view::npos)
    throw Error(ErrorKind::InvalidArgument,
                fmt::format("input text is not valid UTF-8 (byte {} of {})", bad, text.size()));
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const auto& segment : rawMatcher_->split(text)) {
    if (segment.token) {
      ids.push_back(*segment.token);
    } else {
      encodePlain(segment.text, ids);
    }
  }
  return addSpecialTokens ? postProcessor_->apply(std::move(ids)) : ids;
}

std::string BpeTokenizer::decode(const std::vector<TokenId>& ids, bool skipSpecialTokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const TokenId id : ids) {
    if (!(id >= 0 && id < vocabSize()))
      throw Error(ErrorKind::InvalidArgument,
                  fmt::format("token id {} is outside the vocabulary [0, {})", id, vocabSize()));
    if (skipSpecialTokens && special_[id]) continue;
    tokens.push_back(decodeTextById_[id]);
  }
  if (!decoder_) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  decoder_->apply(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string BpeTokenizer::tokenText(TokenId id) const {
  if (!(id >= 0 && id < vocabSize()))
    throw Error(ErrorKind::InvalidArgument,
                fmt::format("token id {} is outside the vocabulary [0, {})", id, vocabSize()));
  return tokenById_[id];
}

bool BpeTokenizer::isSpecial(TokenId id) const {
  return id >= 0 && id < vocabSize() && special_[id];
}

}  // namespace hs::tok
