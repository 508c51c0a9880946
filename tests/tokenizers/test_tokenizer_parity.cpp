// Parity with transformers: every case under tests/fixtures/parity/ lists texts and the ids
// AutoTokenizer gave (tests/parity/make_fixtures.py on the CUDA host); ours must be identical.
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "inference/tokenizers/tokenizer.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"

namespace fs = std::filesystem;

namespace {

// Contents of the added tokens in a tokenizer.json (read here, not through our loader): texts that
// hold one cannot round-trip, since special tokens are skipped and lstrip/rstrip eat whitespace.
struct JsonFacts {
  std::vector<std::string> addedTokens;
  bool nfc = false;  // the normalizer is NFC, so decoding gives the NFC form of the text
};

JsonFacts readJsonFacts(const fs::path& modelDir) {
  JsonFacts facts;
  std::ifstream in(modelDir / "tokenizer.json");
  if (!in) return facts;
  nlohmann::json root;
  in >> root;
  for (const auto& t : root.value("added_tokens", nlohmann::json::array()))
    facts.addedTokens.push_back(t.at("content"));
  const auto normalizer = root.value("normalizer", nlohmann::json());
  facts.nfc = normalizer.is_object() && normalizer.value("type", "") == "NFC";
  return facts;
}

// NFC straight from utf8proc, independent of the tokenizer's normalizer code.
std::string nfc(const std::string& text) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str()));
  std::string result(reinterpret_cast<const char*>(out));
  std::free(out);
  return result;
}

std::vector<fs::path> parityCases() {
  std::vector<fs::path> cases;
  const fs::path root = hs::test::fixture("parity");
  if (!fs::is_directory(root)) return cases;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "expected.json")) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

}  // namespace

TEST_CASE("token ids equal transformers' for every parity fixture", "[parity]") {
  const auto cases = parityCases();
  // No fixtures means nothing was checked: that must fail, not pass silently.
  REQUIRE(!cases.empty());
  for (const auto& dir : cases) {
    nlohmann::json expected;
    std::ifstream(dir / "expected.json") >> expected;
    const std::string model = expected.at("model").get<std::string>();
    DYNAMIC_SECTION(dir.filename().string()) {
      const auto tok = hs::loadTokenizer((fs::path(HS_SOURCE_DIR) / model).string());
      const bool byteLevel = tok->kind().rfind("byte-level", 0) == 0;
      const auto facts = readJsonFacts(fs::path(HS_SOURCE_DIR) / model);
      size_t checked = 0;
      for (const auto& entry : expected.at("tokenize")) {
        const auto text = entry.at("text").get<std::string>();
        const auto ids = entry.at("ids").get<std::vector<hs::TokenId>>();
        INFO(dir.filename().string() << " (" << tok->kind() << ") text: " << nlohmann::json(text).dump());
        const auto ours = tok->encode(text);
        CHECK(ours == ids);
        const bool holdsAddedToken =
            std::any_of(facts.addedTokens.begin(), facts.addedTokens.end(),
                        [&](const std::string& a) { return text.find(a) != std::string::npos; });
        if (byteLevel && !holdsAddedToken) CHECK(tok->decode(ours, true) == (facts.nfc ? nfc(text) : text));
        ++checked;
      }
      CHECK(checked >= 10);
      // Every eos id generation_config.json names must be one of ours (read here independently).
      std::ifstream generation(fs::path(HS_SOURCE_DIR) / model / "generation_config.json");
      if (generation) {
        nlohmann::json config;
        generation >> config;
        auto eos = config.value("eos_token_id", nlohmann::json());
        if (eos.is_number_integer()) eos = nlohmann::json::array({eos});
        for (const auto& id : eos) {
          const auto ours = tok->eosIds();
          CHECK(std::find(ours.begin(), ours.end(), id.get<hs::TokenId>()) != ours.end());
        }
      }
    }
  }
}
