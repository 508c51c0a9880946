// The BPE model on small hand-built vocabularies: byte fallback, unk fusing, subword prefix and
// word suffix, merge ranks (HF tokenizers/src/models/bpe/model.rs semantics).
#include <chrono>
#include <nlohmann/json.hpp>

#include "inference/tokenizers/bpe_model.h"
#include "tests/catch.hpp"

using namespace hs::tok;
using nlohmann::json;
using Ids = std::vector<hs::TokenId>;

namespace {
Ids tokenize(const BpeModel& model, const std::string& word) {
  Ids out;
  model.tokenizeWord(word, out);
  return out;
}
}  // namespace

TEST_CASE("byte fallback and unk", "[bpe_model]") {
  json spec = {{"type", "BPE"},
               {"vocab", {{"a", 0}, {"b", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}, {"<unk>", 4}, {"ab", 5}}},
               {"merges", json::array({"a b"})},
               {"unk_token", "<unk>"},
               {"byte_fallback", true}};
  const BpeModel model(spec, "tokenizer.json");
  CHECK(tokenize(model, "ab\xC3\xA9") == Ids{5, 2, 3});  // é has no token: its bytes C3 A9
  CHECK(tokenize(model, "xa") == Ids{4, 0});             // x: no token, no <0x78> -> unk
  spec["byte_fallback"] = false;
  CHECK(tokenize(BpeModel(spec, "tokenizer.json"), "xyza") == Ids{4, 4, 4, 0});
  spec["fuse_unk"] = true;
  CHECK(tokenize(BpeModel(spec, "tokenizer.json"), "xyza") == Ids{4, 0});
  spec.erase("unk_token");
  CHECK(tokenize(BpeModel(spec, "tokenizer.json"), "xyza") == Ids{0});  // no unk: dropped, as HF does
}

TEST_CASE("continuing_subword_prefix and end_of_word_suffix", "[bpe_model]") {
  const json prefixed = {{"type", "BPE"},
                         {"vocab", {{"h", 0}, {"##e", 1}, {"##y", 2}, {"he", 3}}},
                         {"merges", json::array({json::array({"h", "##e"})})},
                         {"continuing_subword_prefix", "##"}};
  CHECK(tokenize(BpeModel(prefixed, "tokenizer.json"), "hey") == Ids{3, 2});
  const json suffixed = {{"type", "BPE"},
                         {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}}},
                         {"merges", json::array({"a b</w>"})},
                         {"end_of_word_suffix", "</w>"}};
  const BpeModel model(suffixed, "tokenizer.json");
  CHECK(tokenize(model, "ab") == Ids{2});
  CHECK(tokenize(model, "ba") == Ids{3});  // "a</w>" is missing and there is no unk: dropped
}

TEST_CASE("lower rank merges first, leftmost among equals", "[bpe_model]") {
  // Ranks: 0 b+c, 1 a+b, 2 a+bc. "abc": b+c (rank 0) beats a+b (rank 1), then a+bc.
  const json spec = {{"type", "BPE"},
                     {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"bc", 3}, {"ab", 4}, {"abc", 5}}},
                     {"merges", json::array({"b c", "a b", "a bc"})}};
  const BpeModel model(spec, "tokenizer.json");
  CHECK(tokenize(model, "abc") == Ids{5});
  CHECK(tokenize(model, "abab") == Ids{4, 4});
  CHECK(tokenize(model, "cab") == Ids{2, 4});
  json swapped = spec;
  swapped["merges"] = json::array({"a b", "b c", "a bc"});
  CHECK(tokenize(BpeModel(swapped, "tokenizer.json"), "abc") == Ids{4, 2});
}

TEST_CASE("long words merge in n log n", "[bpe_model]") {
  const json spec = {{"type", "BPE"},
                     {"vocab", {{"a", 0}, {"aa", 1}, {"aaaa", 2}}},
                     {"merges", json::array({"a a", "aa aa"})}};
  const BpeModel model(spec, "tokenizer.json");
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tokenize(model, std::string(400001, 'a'));
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 2.0);
  Ids expected(100000, 2);
  expected.push_back(0);
  CHECK(ids == expected);
  CHECK(tokenize(model, std::string(400001, 'a')) == expected);  // second call: same answer
}
