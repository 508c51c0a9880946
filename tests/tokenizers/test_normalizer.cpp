// Normalizers against Unicode's normal forms and HF's documented behaviour.
#include <nlohmann/json.hpp>

#include "inference/tokenizers/normalizer.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"

using namespace hs::tok;
using nlohmann::json;

namespace {
std::string run(const json& spec, std::string text) {
  parseNormalizer(spec, "tokenizer.json")->apply(text);
  return text;
}
}  // namespace

TEST_CASE("normalizers rewrite text like HF tokenizers", "[normalizer]") {
  const json replaceSpace = {
      {"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}};
  struct Row {
    json spec;
    std::string in, out;
  };
  const std::vector<Row> rows = {
      {{{"type", "NFC"}}, "e\xCC\x81", "\xC3\xA9"},  // e + acute -> é
      {{{"type", "NFD"}}, "\xC3\xA9", "e\xCC\x81"},
      {{{"type", "NFKC"}}, "\xEF\xAC\x81 \xE2\x91\xA0", "fi 1"},  // ﬁ ① -> fi 1
      {{{"type", "NFKD"}}, "\xC3\xA9", "e\xCC\x81"},
      {{{"type", "Lowercase"}},
       "\xC3\x80"
       "B \xC4\xB0",
       "\xC3\xA0"
       "b i\xCC\x87"},  // À B İ -> à b i̇
      {replaceSpace, "a b  c",
       "a\xE2\x96\x81"
       "b\xE2\x96\x81\xE2\x96\x81"
       "c"},
      {{{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}}, "a \t\n b", "a b"},
      {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
       "ab",
       "\xE2\x96\x81"
       "ab"},
      {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, "", ""},  // HF skips empty text
      {{{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \xE3\x80\x80x ", "x "},
      // Llama-2's tokenizer.json normalizer.
      {{{"type", "Sequence"},
        {"normalizers", json::array({json{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, replaceSpace})}},
       "Hello world",
       "\xE2\x96\x81"
       "Hello\xE2\x96\x81"
       "world"},
  };
  for (const auto& row : rows) {
    INFO(row.spec.dump());
    CHECK(run(row.spec, row.in) == row.out);
  }
  CHECK(parseNormalizer(nullptr, "tokenizer.json") == nullptr);
}

TEST_CASE("bad normalizer specs are typed errors", "[normalizer]") {
  struct Row {
    json spec;
    hs::ErrorKind kind;
    const char* fragment;
  };
  const std::vector<Row> rows = {
      {{{"type", "BertNormalizer"}}, hs::ErrorKind::Unsupported, "normalizer type 'BertNormalizer'"},
      {{{"kind", "NFC"}}, hs::ErrorKind::Corrupt, "missing required key 'type'"},
      {"NFC", hs::ErrorKind::Corrupt, "expected an object"},
      {{{"type", "Replace"}, {"pattern", {{"Glob", "*"}}}, {"content", ""}},
       hs::ErrorKind::Unsupported,
       "pattern kind 'Glob'"},
      {{{"type", "Replace"}, {"pattern", {{"String", 3}}}, {"content", ""}},
       hs::ErrorKind::Corrupt,
       "pattern must be a string"},
      {{{"type", "Prepend"}}, hs::ErrorKind::Corrupt, "missing required key 'prepend'"},
  };
  for (const auto& row : rows) {
    INFO(row.spec.dump());
    try {
      parseNormalizer(row.spec, "tokenizer.json");
      FAIL("accepted");
    } catch (const hs::Error& e) {
      CHECK(e.kind() == row.kind);
      CHECK(std::string(e.what()).find(row.fragment) != std::string::npos);
      CHECK(std::string(e.what()).rfind("tokenizer.json: normalizer", 0) == 0);
    }
  }
}
