// Pre-tokenizers: split behaviours as in HF's documentation example ("the-final--countdown"),
// Digits, ByteLevel, and the family detection that feeds kind().
#include <nlohmann/json.hpp>

#include "inference/tokenizers/pre_tokenizer.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"

using namespace hs::tok;
using nlohmann::json;
using Pieces = std::vector<std::string>;

namespace {
Pieces run(const json& spec, const std::string& text, PreTokenizerTraits* traitsOut = nullptr) {
  PreTokenizerTraits traits;
  Pieces pieces{text};
  parsePreTokenizer(spec, "tokenizer.json", traits)->split(pieces);
  if (traitsOut) *traitsOut = traits;
  return pieces;
}
json split(const char* behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}
}  // namespace

TEST_CASE("Split behaviours match HF's documented example", "[pre_tokenizer]") {
  const std::string text = "the-final--countdown";
  CHECK(run(split("Removed"), text) == Pieces{"the", "final", "countdown"});
  CHECK(run(split("Isolated"), text) == Pieces{"the", "-", "final", "-", "-", "countdown"});
  CHECK(run(split("MergedWithPrevious"), text) == Pieces{"the-", "final-", "-", "countdown"});
  CHECK(run(split("MergedWithNext"), text) == Pieces{"the", "-final", "-", "-countdown"});
  CHECK(run(split("Contiguous"), text) == Pieces{"the", "-", "final", "--", "countdown"});
  CHECK(run(split("Removed", true), text) == Pieces{"-", "-", "-"});
}

TEST_CASE("Digits and ByteLevel", "[pre_tokenizer]") {
  CHECK(run({{"type", "Digits"}, {"individual_digits", true}}, "ab123c") == Pieces{"ab", "1", "2", "3", "c"});
  CHECK(run({{"type", "Digits"}, {"individual_digits", false}}, "ab123c") == Pieces{"ab", "123", "c"});
  const std::string G = "\xC4\xA0";
  PreTokenizerTraits traits;
  CHECK(run({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, "Hello world",
            &traits) == Pieces{G + "Hello", G + "world"});
  CHECK(traits.byteLevel);
  CHECK(traits.family == "gpt2");
  CHECK(run({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}, " x") ==
        Pieces{G + "x"});
  CHECK(run({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "a b\n") ==
        Pieces{"a" + G + "b\xC4\x8A"});
}

TEST_CASE("Split regex families are recognised; others are parity unverified", "[pre_tokenizer]") {
  const char* qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  auto sequence = [](const std::string& regex) {
    return json{
        {"type", "Sequence"},
        {"pretokenizers",
         json::array({json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}},
                      json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  };
  PreTokenizerTraits traits;
  CHECK(run(sequence(qwen2), "abc 12", &traits) == Pieces{"abc", "\xC4\xA0", "1", "2"});
  CHECK(traits.family == "qwen2");
  CHECK_FALSE(traits.parityUnverified);
  run(sequence("\\w+|\\W+"), "x", &traits);
  CHECK(traits.family == "custom regex");
  CHECK(traits.parityUnverified);
}

TEST_CASE("unknown pre-tokenizers are Unsupported naming the type", "[pre_tokenizer]") {
  PreTokenizerTraits traits;
  for (const char* type : {"Metaspace", "Whitespace", "BertPreTokenizer"}) {
    try {
      parsePreTokenizer(json{{"type", type}}, "tokenizer.json", traits);
      FAIL("accepted " << type);
    } catch (const hs::Error& e) {
      CHECK(e.kind() == hs::ErrorKind::Unsupported);
      CHECK(std::string(e.what()).find(std::string("'") + type + "'") != std::string::npos);
    }
  }
}
