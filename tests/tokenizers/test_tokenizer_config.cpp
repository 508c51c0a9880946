// tokenizer_config.json / generation_config.json / config.json special-token settings.
#include <nlohmann/json.hpp>

#include "inference/tokenizers/tokenizer_config.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/tokenizers/tiny_tokenizer.h"

using hs::tok::readSpecialTokenConfig;
using nlohmann::json;

TEST_CASE("special tokens, flags and eos ids are read from the three files", "[tokenizer_config]") {
  hs::test::TempDir dir;
  dir.write("tokenizer_config.json",
            json{{"add_bos_token", false},
                 {"legacy", false},
                 {"bos_token", {{"content", "<s>"}, {"special", true}}},
                 {"eos_token", "</s>"},
                 {"pad_token", nullptr},
                 {"additional_special_tokens", {"<x>", "<y>"}},
                 {"added_tokens_decoder", {{"5", {{"content", "<x>"}, {"special", true}, {"lstrip", true}}}}}}
                .dump());
  dir.write("generation_config.json", json{{"eos_token_id", {2, 7}}}.dump());
  dir.write("config.json", json{{"eos_token_id", 7}, {"bos_token_id", 1}}.dump());
  const auto c = readSpecialTokenConfig(dir.str());
  CHECK(c.addBosToken == std::optional<bool>(false));
  CHECK_FALSE(c.addEosToken.has_value());  // absent, not false: transformers treats the two differently
  CHECK(c.legacy == std::optional<bool>(false));
  CHECK(c.bosToken == std::optional<std::string>("<s>"));
  CHECK(c.eosToken == std::optional<std::string>("</s>"));
  std::vector<std::string> named;
  for (const auto& t : c.namedTokens) named.push_back(t.field + "=" + t.content);
  CHECK(named == std::vector<std::string>{"bos_token=<s>", "eos_token=</s>",
                                          "additional_special_tokens[0]=<x>",
                                          "additional_special_tokens[1]=<y>"});
  REQUIRE(c.addedTokensDecoder.size() == 1);
  CHECK(c.addedTokensDecoder[0].id == 5);
  CHECK(c.addedTokensDecoder[0].lstrip);
  CHECK_FALSE(c.addedTokensDecoder[0].normalized);  // special tokens default to normalized=false
  std::vector<int64_t> eos;
  for (const auto& [file, id] : c.eosIdsFromModel) eos.push_back(id);
  CHECK(eos == std::vector<int64_t>{2, 7, 7});  // generation_config.json first, then config.json
}

TEST_CASE("an empty directory gives an empty config", "[tokenizer_config]") {
  hs::test::TempDir dir;
  const auto c = readSpecialTokenConfig(dir.str());
  CHECK(c.configFile.empty());
  CHECK(c.namedTokens.empty());
  CHECK(c.eosIdsFromModel.empty());
}

TEST_CASE("malformed settings are Corrupt naming file and key", "[tokenizer_config]") {
  struct Row {
    const char* file;
    json content;
    const char* fragment;
  };
  const std::vector<Row> rows = {
      {"tokenizer_config.json", {{"add_bos_token", "yes"}}, "tokenizer_config.json: add_bos_token"},
      {"tokenizer_config.json", {{"eos_token", 5}}, "tokenizer_config.json: eos_token"},
      {"tokenizer_config.json",
       {{"added_tokens_decoder", {{"x1", {{"content", "<x>"}}}}}},
       "added_tokens_decoder.x1"},
      {"tokenizer_config.json",
       {{"added_tokens_decoder", {{"3", {{"special", true}}}}}},
       "added_tokens_decoder.3"},
      {"generation_config.json", {{"eos_token_id", "2"}}, "generation_config.json: eos_token_id"},
      {"config.json", {{"eos_token_id", {1, -4}}}, "config.json: eos_token_id"},
  };
  for (const auto& row : rows) {
    INFO(row.content.dump());
    hs::test::TempDir dir;
    dir.write(row.file, row.content.dump());
    try {
      readSpecialTokenConfig(dir.str());
      FAIL("accepted");
    } catch (const hs::Error& e) {
      CHECK(e.kind() == hs::ErrorKind::Corrupt);
      CHECK(std::string(e.what()).find(row.fragment) != std::string::npos);
    }
  }
}
