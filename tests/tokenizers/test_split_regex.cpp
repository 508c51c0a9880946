// PCRE2 matching with HF (Oniguruma) semantics for the pre-tokenizer regexes.
#include <chrono>

#include "inference/tokenizers/pre_tokenizer.h"
#include "inference/tokenizers/split_regex.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"

using namespace hs::tok;

namespace {
std::vector<std::string> pieces(const SplitRegex& re, const std::string& text) {
  std::vector<std::string> out;
  for (const auto& [b, e] : re.findAll(text)) out.push_back(text.substr(b, e - b));
  return out;
}
}  // namespace

TEST_CASE("GPT-2 regex splits as in HF's ByteLevel pre-tokenizer", "[split_regex]") {
  const SplitRegex re(kGpt2Pattern, false, "test");
  // "  123": \s+(?!\S) keeps one space back for " 123".
  CHECK(pieces(re, "Hello world's  123!!") ==
        std::vector<std::string>{"Hello", " world", "'s", " ", " 123", "!!"});
  CHECK(pieces(re, "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD") ==
        std::vector<std::string>{"caf\xC3\xA9", " \xE4\xBD\xA0\xE5\xA5\xBD"});
  CHECK(pieces(re, "a\n\n b") == std::vector<std::string>{"a", "\n\n", " b"});
}

TEST_CASE("\\s and \\S also cover U+0085 as in Oniguruma", "[split_regex]") {
  CHECK(onigCompatiblePattern(R"(\s+(?!\S))") == R"([\s\x{85}]+(?![^\s\x{85}]))");
  CHECK(onigCompatiblePattern(R"([^\s\p{L}])") == R"([^\s\x{85}\p{L}])");
  CHECK(onigCompatiblePattern(R"([]\s]x)") == R"([]\s\x{85}]x)");
  CHECK(onigCompatiblePattern(R"(\\s)") == R"(\\s)");
  const SplitRegex ws(R"(\s+)", false, "test");
  CHECK(pieces(ws, "a\xC2\x85 b") == std::vector<std::string>{"\xC2\x85 "});
}

TEST_CASE("literal patterns, empty matches and long runs", "[split_regex]") {
  const SplitRegex literal("a.b", true, "test");
  CHECK(pieces(literal, "axb a.b") == std::vector<std::string>{"a.b"});
  const SplitRegex empty("x*", false, "test");
  CHECK(empty.findAll("ab\xC3\xA9").empty());
  const SplitRegex re(kGpt2Pattern, false, "test");
  const std::string run(1000000, ' ');
  const auto start = std::chrono::steady_clock::now();
  CHECK(re.findAll(run + "x").size() == 2);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 2.0);
}

TEST_CASE("patterns PCRE2 cannot compile are Unsupported naming the pattern", "[split_regex]") {
  for (const char* bad : {"(?<=a+)b", "(unclosed", "\\p{NoSuchProperty}"}) {
    try {
      SplitRegex re(bad, false, "tokenizer.json: pre_tokenizer");
      FAIL("compiled " << bad);
    } catch (const hs::Error& e) {
      CHECK(e.kind() == hs::ErrorKind::Unsupported);
      CHECK(std::string(e.what()).find(std::string("regex '") + bad + "'") != std::string::npos);
    }
  }
}
