// Post-processors (special tokens around the ids) and decoders (token strings back to text).
#include <nlohmann/json.hpp>

#include "inference/tokenizers/post_processor.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"

using namespace hs::tok;
using nlohmann::json;
using Ids = std::vector<hs::TokenId>;

namespace {
const json kSpecials = {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                        {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}};

std::string decode(const json& spec, std::vector<std::string> tokens) {
  parseDecoder(spec, "tokenizer.json")->apply(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}
}  // namespace

TEST_CASE("TemplateProcessing in object and string form", "[post_processor]") {
  const json objects = {{"type", "TemplateProcessing"},
                        {"single", json::array({json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                                json{{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
                        {"special_tokens", kSpecials}};
  CHECK(parsePostProcessor(objects, "t.json", 10)->apply({7, 8}) == Ids{1, 7, 8, 2});
  const json text = {{"type", "TemplateProcessing"}, {"single", "<s>:0 $A:0"}, {"special_tokens", kSpecials}};
  CHECK(parsePostProcessor(text, "t.json", 10)->apply({}) == Ids{1});
  const json sequence = {
      {"type", "Sequence"},
      {"processors", json::array({json{{"type", "ByteLevel"}, {"trim_offsets", false}}, text})}};
  CHECK(parsePostProcessor(sequence, "t.json", 10)->apply({5}) == Ids{1, 5});
  const json roberta = {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 0}}};
  CHECK(parsePostProcessor(roberta, "t.json", 10)->apply({5}) == Ids{0, 5, 2});
  CHECK(parsePostProcessor({{"type", "ByteLevel"}}, "t.json", 10)->apply({5}) == Ids{5});
}

TEST_CASE("decoders turn tokens back into text", "[post_processor]") {
  const std::string U = "\xE2\x96\x81";  // ▁
  CHECK(decode({{"type", "ByteLevel"}}, {"\xC4\xA0"
                                         "Hello",
                                         "\xC4\xA0"
                                         "w",
                                         "orld"}) == " Hello world");
  CHECK(decode({{"type", "ByteLevel"}}, {"a b",
                                         "\xC4\xA0"
                                         "c"}) == "a b c");  // foreign token kept as is
  CHECK(decode({{"type", "ByteLevel"}}, {"\xC3\xB0", "\xC5\x81"}) ==
        "\xEF\xBF\xBD");  // ð Ł = bytes F0 9F: cut off
  CHECK(decode({{"type", "ByteFallback"}}, {"<0xE2>", "<0x96>", "<0x81>", "a"}) == U + "a");
  CHECK(decode({{"type", "ByteFallback"}}, {"<0xFF>", "<0xFE>", "x"}) == "\xEF\xBF\xBD\xEF\xBF\xBDx");
  // Llama-2's decoder chain.
  const json llama2 = {
      {"type", "Sequence"},
      {"decoders", json::array({json{{"type", "Replace"}, {"pattern", {{"String", U}}}, {"content", " "}},
                                json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}},
                                json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  CHECK(decode(llama2, {U + "Hello", U + "wor", "ld", "<0x21>"}) == "Hello world!");
}

TEST_CASE("bad post-processors and decoders are typed errors", "[post_processor]") {
  struct Row {
    json spec;
    bool decoder;
    hs::ErrorKind kind;
    const char* fragment;
  };
  const std::vector<Row> rows = {
      {{{"type", "BertProcessingX"}},
       false,
       hs::ErrorKind::Unsupported,
       "post-processor type 'BertProcessingX'"},
      {{{"type", "TemplateProcessing"}, {"single", "<x> $A"}, {"special_tokens", kSpecials}},
       false,
       hs::ErrorKind::Corrupt,
       "special token '<x>' of the template is missing"},
      {{{"type", "TemplateProcessing"}, {"single", "<s>"}, {"special_tokens", kSpecials}},
       false,
       hs::ErrorKind::Corrupt,
       "no $A"},
      {{{"type", "TemplateProcessing"}, {"single", "$A </s>"}, {"special_tokens", kSpecials}},
       false,
       hs::ErrorKind::Corrupt,
       "id 2 is outside the vocabulary [0, 2)"},
      {{{"type", "CTC"}}, true, hs::ErrorKind::Unsupported, "decoder type 'CTC'"},
      {{{"type", "Strip"}, {"content", " "}, {"start", -1}}, true, hs::ErrorKind::Corrupt, "non-negative"},
  };
  for (const auto& row : rows) {
    INFO(row.spec.dump());
    try {
      if (row.decoder) {
        parseDecoder(row.spec, "tokenizer.json");
      } else {
        parsePostProcessor(row.spec, "tokenizer.json", 2);
      }
      FAIL("accepted");
    } catch (const hs::Error& e) {
      CHECK(e.kind() == row.kind);
      CHECK(std::string(e.what()).find(row.fragment) != std::string::npos);
    }
  }
}
