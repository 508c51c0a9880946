#include "inference/tokenizers/tokenizer_config.h"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "inference/tokenizers/json_fields.h"
#include "kernels/core/error.h"

namespace hs::tok {
namespace {

// A special token value: "text", {"content": "text", ...} (AddedToken dict) or null.
std::optional<std::string> tokenContent(const nlohmann::json& v, const std::string& file,
                                        const std::string& field) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (!(v.is_object() && v.contains("content") && v["content"].is_string()))
    throw Error(ErrorKind::Corrupt,
                fmt::format("expected a token string or {{\"content\": ...}}, found {}", shortJson(v)), file,
                field);
  return v["content"].get<std::string>();
}

void readEosIds(const std::string& path, SpecialTokenConfig& out) {
  if (!std::filesystem::exists(path)) return;
  const auto root = readJsonFile(path);
  const auto it = root.find("eos_token_id");
  if (it == root.end() || it->is_null()) return;
  auto add = [&](const nlohmann::json& v) {
    if (!(v.is_number_integer() && v.get<int64_t>() >= 0))
      throw Error(ErrorKind::Corrupt,
                  fmt::format("eos_token_id must be a non-negative integer or a list of them, found {}",
                              shortJson(v)),
                  path, "eos_token_id");
    out.eosIdsFromModel.emplace_back(path, v.get<int64_t>());
  };
  if (it->is_array()) {
    for (const auto& v : *it) add(v);
  } else {
    add(*it);
  }
}

}  // namespace

SpecialTokenConfig readSpecialTokenConfig(const std::string& dir) {
  SpecialTokenConfig out;
  const auto path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  if (std::filesystem::exists(path)) {
    out.configFile = path;
    const auto root = readJsonFile(path);
    if (root.contains("add_bos_token") && !root["add_bos_token"].is_null())
      out.addBosToken = optionalBool(root, "add_bos_token", false, path, "add_bos_token");
    if (root.contains("add_eos_token") && !root["add_eos_token"].is_null())
      out.addEosToken = optionalBool(root, "add_eos_token", false, path, "add_eos_token");
    if (root.contains("legacy") && !root["legacy"].is_null())
      out.legacy = optionalBool(root, "legacy", true, path, "legacy");
    for (const char* key :
         {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"}) {
      if (!root.contains(key)) continue;
      const auto content = tokenContent(root[key], path, key);
      if (!content) continue;
      out.namedTokens.push_back({key, *content});
      if (std::string(key) == "bos_token") out.bosToken = content;
      if (std::string(key) == "eos_token") out.eosToken = content;
    }
    for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
      if (!root.contains(key) || root[key].is_null()) continue;
      const auto& list = root[key];
      if (!(list.is_array() || list.is_object()))
        throw Error(ErrorKind::Corrupt, fmt::format("expected a list of tokens, found {}", shortJson(list)),
                    path, key);
      size_t i = 0;
      for (const auto& v : list) {
        const std::string field = fmt::format("{}[{}]", key, i++);
        if (auto content = tokenContent(v, path, field)) out.namedTokens.push_back({field, *content});
      }
    }
    if (root.contains("added_tokens_decoder") && !root["added_tokens_decoder"].is_null()) {
      const auto& decoder = root["added_tokens_decoder"];
      check(decoder.is_object(), ErrorKind::Corrupt, "expected an object of id -> token", path,
            "added_tokens_decoder");
      for (const auto& [key, v] : decoder.items()) {
        const std::string field = "added_tokens_decoder." + key;
        AddedToken t;
        try {
          size_t used = 0;
          const long long id = std::stoll(key, &used);
          check(used == key.size() && id >= 0 && id <= INT32_MAX, ErrorKind::Corrupt, "bad id", path, field);
          t.id = static_cast<TokenId>(id);
        } catch (const std::logic_error&) {
          throw Error(ErrorKind::Corrupt, fmt::format("key '{}' is not a token id", key), path, field);
        }
        if (!v.is_object())
          throw Error(ErrorKind::Corrupt, fmt::format("expected an object, found {}", shortJson(v)), path,
                      field);
        t.content = requireString(v, "content", path, field);
        t.singleWord = optionalBool(v, "single_word", false, path, field);
        t.lstrip = optionalBool(v, "lstrip", false, path, field);
        t.rstrip = optionalBool(v, "rstrip", false, path, field);
        t.special = optionalBool(v, "special", false, path, field);
        t.normalized = optionalBool(v, "normalized", !t.special, path, field);
        out.addedTokensDecoder.push_back(std::move(t));
      }
    }
  }
  readEosIds((std::filesystem::path(dir) / "generation_config.json").string(), out);
  readEosIds((std::filesystem::path(dir) / "config.json").string(), out);
  return out;
}

}  // namespace hs::tok
