// Byte-level BPE tokenizer end to end on the hand-built tiny tokenizer (ids derived by hand in the
// comments from the merge table in tiny_tokenizer.h).
#include <chrono>
#include <thread>

#include "inference/tokenizers/tokenizer.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/tokenizers/tiny_tokenizer.h"

using hs::TokenId;
using Ids = std::vector<TokenId>;

namespace {

std::unique_ptr<hs::Tokenizer> loadTiny(const hs::test::TempDir& dir, const nlohmann::json& json,
                                        const nlohmann::json& config = {{"bos_token", "<|bos|>"},
                                                                        {"eos_token", "<|eot|>"}}) {
  dir.write("tokenizer.json", json.dump());
  if (!config.is_null()) dir.write("tokenizer_config.json", config.dump());
  return hs::loadTokenizer(dir.str());
}

}  // namespace

TEST_CASE("tiny byte-level BPE gives hand-derived ids", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  const auto tok = loadTiny(dir, hs::test::tinyTokenizerJson());
  struct Row {
    std::string text;
    Ids ids;
  };
  const std::vector<Row> rows = {
      {"the", {116, 257}},                         // t h e -> (h,e) rank 1; no (t,he) merge
      {" the", {258}},                             // Ġ t h e -> Ġt, he -> Ġthe
      {"hello", {257, 262}},                       // (h,e) rank 1 beats (l,l) rank 3, so "hell" never forms
      {"12345", {263, 51, 52, 53}},                // \p{N}{1,3}: "123" "45"; (1,2) merges
      {"aaaaa", {267, 97}},                        // leftmost aa first: aa aa a -> aaaa a
      {"a    b", {97, 264, 32, 32, 98}},           // "a" "   " " b": \s+(?!\S) leaves one space for " b"
      {"<|bos|>the", {268, 116, 257}},             // added token split out of the raw text
      {"a <sep> b", {97, 270, 98}},                // lstrip/rstrip swallow the spaces around <sep>
      {"Bob's", {271, 39, 115}},                   // single_word: "'" is not a word character
      {"Bobby", {66, 111, 98, 98, 121}},           // single_word: "Bob" inside a word is not matched
      {"e\xCC\x81", {195, 169}},                   // NFC: e + U+0301 -> U+00E9 = C3 A9
      {"\xF0\x9F\x98\x80", {240, 159, 152, 128}},  // emoji: its four bytes
      {"", {}},
  };
  for (const auto& row : rows) {
    INFO("text: " << row.text);
    CHECK(tok->encode(row.text, false) == row.ids);
    Ids withBos = {268};
    withBos.insert(withBos.end(), row.ids.begin(), row.ids.end());
    CHECK(tok->encode(row.text) == withBos);
  }
  CHECK(tok->bosId() == std::optional<TokenId>(268));
  CHECK(tok->eosIds() == Ids{269});
  CHECK(tok->vocabSize() == 272);
  CHECK(tok->isSpecial(268));
  CHECK_FALSE(tok->isSpecial(270));
  CHECK(tok->tokenText(258) == hs::test::bl(' ') + "the");
  CHECK(tok->kind() == "byte-level BPE (tokenizer.json, llama3 pre-tokenizer)");
}

TEST_CASE("decode inverts encode for tricky UTF-8 and drops specials on request", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  const auto tok = loadTiny(dir, hs::test::tinyTokenizerJson());
  const std::vector<std::string> texts = {
      "Hello, world! It's 2024-05-01.",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C",                               // 你好世界
      "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",  // ZWJ + skin tone
      "tabs\t\tand\n\n\nnewlines\r\n   ",
      "                                        spaces",
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 x<sep>y",  // Arabic; <sep> without spaces to strip
      "12345678901234567890",
  };
  for (const auto& text : texts) {
    INFO("text: " << text);
    const auto ids = tok->encode(text);
    CHECK(tok->decode(ids, true) == text);
    CHECK(tok->decode(ids, false) == "<|bos|>" + text);
  }
  // A cut-off 4-byte sequence decodes to one U+FFFD, like String::from_utf8_lossy.
  CHECK(tok->decode({240, 159}) == "\xEF\xBF\xBD");
  CHECK(tok->decode({104, 0xC0, 105}) == "h\xEF\xBF\xBDi");
}

TEST_CASE("GPT-2 pre-tokenizer: ByteLevel with its own regex and add_prefix_space", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  auto json = hs::test::tinyTokenizerJson();
  json["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  json["normalizer"] = nullptr;
  const auto tok = loadTiny(dir, json);
  CHECK(tok->kind() == "byte-level BPE (tokenizer.json, gpt2 pre-tokenizer)");
  CHECK(tok->encode("the", false) == Ids{258});                     // prefix space: "Ġthe"
  CHECK(tok->encode("12345", false) == Ids{32, 263, 51, 52, 53});   // " 12345" is one piece: Ġ 12 3 4 5
  CHECK(tok->encode("it's", false) == Ids{32, 105, 116, 39, 115});  // " it" "'s"
}

TEST_CASE("ignore_merges takes whole words from the vocab", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  auto json = hs::test::tinyTokenizerJson();
  // "hell" (261) is only reachable through e+ll, which never happens after h+e merges first.
  CHECK(loadTiny(dir, json)->encode("hell", false) == Ids{257, 259});
  json["model"]["ignore_merges"] = true;
  hs::test::TempDir dir2;
  CHECK(loadTiny(dir2, json)->encode("hell", false) == Ids{261});
}

TEST_CASE("transformers v5 rebuilds the template when add_bos/add_eos are explicit", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  const auto tok = loadTiny(dir, hs::test::tinyTokenizerJson(),
                            {{"bos_token", "<|bos|>"},
                             {"eos_token", "<|eot|>"},
                             {"add_bos_token", false},
                             {"add_eos_token", true}});
  CHECK(tok->encode("the") == Ids{116, 257, 269});
}

TEST_CASE("long whitespace and digit runs stay fast", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  const auto tok = loadTiny(dir, hs::test::tinyTokenizerJson());
  const std::string spaces(200000, ' ');
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok->encode(spaces, false);
  const auto digits = tok->encode(std::string(200000, '7'), false);
  const auto as = tok->encode(std::string(200000, 'a'), false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(ids == Ids(50000, 265));  // 200000 spaces -> 50000 x "ĠĠĠĠ"
  CHECK(digits.size() == 200000);
  CHECK(as == Ids(50000, 267));
  CHECK(seconds < 5.0);
}

TEST_CASE("concurrent encodes agree with a single-threaded run", "[bpe_tokenizer]") {
  hs::test::TempDir dir;
  const auto tok = loadTiny(dir, hs::test::tinyTokenizerJson());
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) {
    texts.push_back("text " + std::to_string(i * 7919) + std::string(static_cast<size_t>(i), ' ') +
                    "hello the<sep>aaaa" + std::to_string(i));
  }
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok->encode(t));
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 8; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (tok->encode(texts[(i + static_cast<size_t>(w)) % texts.size()]) !=
              expected[(i + static_cast<size_t>(w)) % texts.size()])
            ++mismatches[static_cast<size_t>(w)];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(mismatches == std::vector<int>(8, 0));
}
