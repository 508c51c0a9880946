// SentencePiece tokenizer against the library itself: a BPE model with byte fallback is trained
// here with SentencePieceTrainer, and our ids must equal its EncodeAsIds plus BOS, except where
// transformers deliberately differs (special tokens in the text, no second "▁" before a space).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "inference/tokenizers/tokenizer.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/tokenizers/tiny_tokenizer.h"

using hs::TokenId;
using Ids = std::vector<TokenId>;

namespace {

// Trains once per process into a directory that lives until exit.
const hs::test::TempDir& trainedModelDir() {
  static const hs::test::TempDir dir;
  static const bool trained = [] {
    std::string corpus;
    const char* lines[] = {
        "The quick brown fox jumps over the lazy dog.",
        "Tokenizers split text into pieces; pieces become ids.",
        "Attention heads attend to earlier tokens in the sequence.",
        "1234 5678 90, dates like 2024-05-01 and times like 12:30.",
        "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C",
        "    indented code(); return x + y;",
    };
    for (int rep = 0; rep < 30; ++rep) {
      for (const char* l : lines) corpus += std::string(l) + "\n";
    }
    dir.write("corpus.txt", corpus);
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        std::unordered_map<std::string, std::string>{{"input", dir.file("corpus.txt")},
                                                     {"model_prefix", dir.file("tokenizer")},
                                                     {"model_type", "bpe"},
                                                     {"vocab_size", "400"},
                                                     {"byte_fallback", "true"},
                                                     {"character_coverage", "1.0"},
                                                     {"remove_extra_whitespaces", "false"},
                                                     {"normalization_rule_name", "identity"},
                                                     {"hard_vocab_limit", "false"},
                                                     {"unk_id", "0"},
                                                     {"bos_id", "1"},
                                                     {"eos_id", "2"},
                                                     {"pad_id", "-1"},
                                                     {"num_threads", "1"},
                                                     {"minloglevel", "2"}});
    REQUIRE(status.ok());
    return true;
  }();
  (void)trained;
  return dir;
}

// A model directory holding the trained tokenizer.model and the given tokenizer_config.json.
std::unique_ptr<hs::Tokenizer> load(const hs::test::TempDir& dir, const nlohmann::json& config) {
  std::ifstream in(trainedModelDir().file("tokenizer.model"), std::ios::binary);
  dir.write("tokenizer.model", std::string(std::istreambuf_iterator<char>(in), {}));
  dir.write("tokenizer_config.json", config.dump());
  return hs::loadTokenizer(dir.str());
}

Ids cat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST_CASE("ids equal SentencePiece's own EncodeAsIds plus BOS", "[sentencepiece_tokenizer]") {
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(trainedModelDir().file("tokenizer.model")).ok());
  auto ref = [&](const std::string& text) {
    const auto ids = sp.EncodeAsIds(text);
    return Ids(ids.begin(), ids.end());
  };
  hs::test::TempDir dir;
  const auto tok =
      load(dir, {{"add_bos_token", true}, {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"legacy", false}});
  const std::vector<std::string> texts = {
      "The quick brown fox",
      "pieces become ids.",
      "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD",
      "emoji \xF0\x9F\x98\x80 falls back to bytes",
      "tabs\tand\nnewlines",
      "x",
      "2024-05-01 12:30",
  };
  for (const auto& text : texts) {
    INFO(text);
    CHECK(tok->encode(text) == cat({{1}, ref(text)}));
    CHECK(tok->encode(text, false) == ref(text));
    CHECK(tok->decode(tok->encode(text), true) == text);
  }
  CHECK(tok->vocabSize() == sp.GetPieceSize());
  CHECK(tok->bosId() == std::optional<TokenId>(1));
  CHECK(tok->eosIds() == Ids{2});
  CHECK(tok->isSpecial(1));
  CHECK_FALSE(tok->isSpecial(ref("x").back()));
  CHECK(tok->tokenText(1) == "<s>");
  CHECK(tok->encode("") == Ids{1});

  // transformers' Metaspace adds no second "▁" to text that starts with a space: " fox" is
  // "▁fox", which is what SentencePiece makes of "fox".
  CHECK(tok->encode(" fox") == cat({{1}, ref("fox")}));
  // <s>, </s> and <unk> in the text are special tokens; " world" after one is "▁world".
  CHECK(tok->encode("hello</s> world") == cat({{1}, ref("hello"), {2}, ref("world")}));
  CHECK(tok->encode("<s>") == Ids{1, 1});
  // With legacy=false (prepend_scheme "first") text right after a special token gets no "▁": the
  // pieces after </s> spell exactly "world".
  const auto ids = tok->encode("hello</s>world", false);
  const auto eos = std::find(ids.begin(), ids.end(), 2);
  REQUIRE(eos != ids.end());
  std::string tail;
  for (auto it = eos + 1; it != ids.end(); ++it) tail += tok->tokenText(*it);
  CHECK(tail == "world");
  CHECK(tok->encode("a<unk>", false) == cat({ref("a"), {0}}));
}

TEST_CASE("add_bos_token/add_eos_token and legacy come from tokenizer_config.json",
          "[sentencepiece_tokenizer]") {
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(trainedModelDir().file("tokenizer.model")).ok());
  auto ref = [&](const std::string& text) {
    const auto ids = sp.EncodeAsIds(text);
    return Ids(ids.begin(), ids.end());
  };
  hs::test::TempDir a, b;
  const auto eosOnly = load(a, {{"add_bos_token", false}, {"add_eos_token", true}});
  CHECK(eosOnly->encode("fox") == cat({ref("fox"), {2}}));
  // legacy=true (transformers' default) puts "▁" before text after a special token too.
  const auto legacy = load(b, {{"legacy", true}});
  CHECK(legacy->encode("hello</s>world") == cat({{1}, ref("hello"), {2}, ref("world")}));
}

TEST_CASE("special tokens SentencePiece lacks are Corrupt at load", "[sentencepiece_tokenizer]") {
  hs::test::TempDir dir;
  try {
    load(dir, {{"bos_token", "<|begin_of_text|>"}});
    FAIL("loaded");
  } catch (const hs::Error& e) {
    CHECK(e.kind() == hs::ErrorKind::Corrupt);
    CHECK(std::string(e.what()).find("tokenizer_config.json: bos_token") != std::string::npos);
  }
}

TEST_CASE("a Metaspace tokenizer.json next to tokenizer.model loads the SentencePiece model",
          "[sentencepiece_tokenizer]") {
  hs::test::TempDir dir;
  // Llama-2's tokenizer.json layout: Prepend/Replace normalizer, no pre-tokenizer, byte fallback.
  const nlohmann::json llama2 = {
      {"version", "1.0"},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         nlohmann::json::array({nlohmann::json{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}})}}},
      {"pre_tokenizer", nullptr},
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"vocab", {{"a", 0}}},
        {"merges", nlohmann::json::array()}}}};
  dir.write("tokenizer.json", llama2.dump());
  const auto tok = load(dir, {{"legacy", false}});
  CHECK(tok->kind() == "SentencePiece (tokenizer.model)");
}
