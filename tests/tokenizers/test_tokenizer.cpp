// loadTokenizer / loadTokenizerFile: choosing the tokenizer file, and the table of broken inputs
// from reliability.md section 5 C (cases 24-31): each must be a typed error naming file and field.
#include <sys/mman.h>

#include <functional>

#include "inference/tokenizers/tokenizer.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"
#include "tests/tokenizers/tiny_tokenizer.h"

using hs::ErrorKind;
using nlohmann::json;

namespace {

struct BadCase {
  const char* name;
  std::function<void(const hs::test::TempDir&)> make;  // writes the broken files
  ErrorKind kind;
  const char* fragment;  // must appear in what(), which carries file and field
};

void writeJson(const hs::test::TempDir& dir, const std::function<void(json&)>& edit) {
  auto j = hs::test::tinyTokenizerJson();
  edit(j);
  dir.write("tokenizer.json", j.dump());
}

std::function<void(const hs::test::TempDir&)> edited(std::function<void(json&)> edit) {
  return [edit](const hs::test::TempDir& dir) { writeJson(dir, edit); };
}

std::function<void(const hs::test::TempDir&)> raw(std::string bytes) {
  return [bytes](const hs::test::TempDir& dir) { dir.write("tokenizer.json", bytes); };
}

std::function<void(const hs::test::TempDir&)> withConfig(const char* name, json config) {
  return [name, config](const hs::test::TempDir& dir) {
    writeJson(dir, [](json&) {});
    dir.write(name, config.dump());
  };
}

}  // namespace

TEST_CASE("broken tokenizer files give typed errors naming file and field", "[tokenizer]") {
  const std::vector<BadCase> cases = {
      // 24: not JSON at all
      {"empty file", raw(""), ErrorKind::Corrupt, "tokenizer.json: file is empty"},
      {"HTML error page", raw("<!DOCTYPE html><html><body>Not Found</body></html>"), ErrorKind::Corrupt,
       "starts with \"<!DOCTYPE html>"},
      {"Git LFS pointer", raw("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 9\n"),
       ErrorKind::Corrupt, "starts with \"version https://git-lfs"},
      {"a bare 404", raw("404"), ErrorKind::Corrupt, "starts with \"404\""},
      {"truncated JSON", raw("{\"version\": \"1.0\", \"model\": {\"vocab\": {"), ErrorKind::Corrupt,
       "not valid JSON"},
      // 25: versions and component types we do not implement
      {"version 2.0", edited([](json& j) { j["version"] = "2.0"; }), ErrorKind::Unsupported,
       "version: tokenizer.json version \"2.0\""},
      {"WordPiece model", edited([](json& j) { j["model"]["type"] = "WordPiece"; }), ErrorKind::Unsupported,
       "WordPiece"},
      {"unknown pre-tokenizer", edited([](json& j) {
         j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
       }),
       ErrorKind::Unsupported, "pre_tokenizer: pre-tokenizer type 'Whitespace'"},
      {"unknown normalizer", edited([](json& j) {
         j["normalizer"] = {{"type", "BertNormalizer"}};
       }),
       ErrorKind::Unsupported, "normalizer: normalizer type 'BertNormalizer'"},
      {"unknown decoder", edited([](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       }),
       ErrorKind::Unsupported, "decoder: decoder type 'WordPiece'"},
      {"unknown post-processor", edited([](json& j) {
         j["post_processor"] = {{"type", "Foo"}};
       }),
       ErrorKind::Unsupported, "post_processor: post-processor type 'Foo'"},
      {"Metaspace tokenizer.json without tokenizer.model", edited([](json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
       }),
       ErrorKind::Unsupported, "BPE model with Metaspace pre-tokenizer"},
      // 26: merges
      {"merge names a missing token", edited([](json& j) {
         j["model"]["merges"][3] = json::array({"l", "zz"});
       }),
       ErrorKind::Corrupt, "model.merges[3]: merge names 'zz'"},
      {"merged token missing", edited([](json& j) {
         j["model"]["merges"][4] = json::array({"x", "y"});
       }),
       ErrorKind::Corrupt, "model.merges[4]: merged token 'xy'"},
      {"legacy merge with two spaces", edited([](json& j) { j["model"]["merges"][0] = "a b c"; }),
       ErrorKind::Corrupt, "model.merges[0]: legacy merge \"a b c\""},
      {"merge of the wrong shape", edited([](json& j) { j["model"]["merges"][1] = json::array({"a"}); }),
       ErrorKind::Corrupt, "model.merges[1]"},
      // 27: ids that conflict or leave holes
      {"added token id taken by the vocab", edited([](json& j) { j["added_tokens"][0]["id"] = 5; }),
       ErrorKind::Corrupt, "added_tokens[0]: added token '<|bos|>' has id 5, which the vocab gives to"},
      {"added token in vocab with another id",
       edited([](json& j) { j["added_tokens"][0]["content"] = "aa"; }), ErrorKind::Corrupt,
       "added token 'aa' has id 268 but the vocab gives it id 266"},
      {"two added tokens share an id", edited([](json& j) { j["added_tokens"][1]["id"] = 268; }),
       ErrorKind::Corrupt, "id 268 is given to both '<|bos|>' and '<|eot|>'"},
      {"vocab ids shared", edited([](json& j) { j["model"]["vocab"]["zz"] = 7; }), ErrorKind::Corrupt,
       "model.vocab: id 7 is given to both"},
      {"hole in the ids", edited([](json& j) { j["added_tokens"][3]["id"] = 300; }), ErrorKind::Corrupt,
       "id 271 belongs to no token"},
      {"negative id", edited([](json& j) { j["model"]["vocab"]["zz"] = -1; }), ErrorKind::Corrupt,
       "model.vocab: id of 'zz'"},
      {"huge id", edited([](json& j) { j["model"]["vocab"]["zz"] = 2000000000; }), ErrorKind::Corrupt,
       "largest id 2000000000"},
      // 28: special tokens that are not in the vocabulary
      {"unk_token missing", edited([](json& j) { j["model"]["unk_token"] = "<unk>"; }), ErrorKind::Corrupt,
       "model.unk_token: unk_token '<unk>' is not in the vocab"},
      {"bos_token missing", withConfig("tokenizer_config.json", {{"bos_token", "<s>"}}), ErrorKind::Corrupt,
       "tokenizer_config.json: bos_token: bos_token '<s>' is neither in the vocab"},
      {"pad_token missing", withConfig("tokenizer_config.json", {{"pad_token", {{"content", "<pad>"}}}}),
       ErrorKind::Corrupt, "pad_token: pad_token '<pad>'"},
      {"eos id out of range",
       withConfig("generation_config.json", {{"eos_token_id", json::array({269, 999})}}), ErrorKind::Corrupt,
       "generation_config.json: eos_token_id: eos_token_id 999 is outside the vocabulary [0, 272)"},
      {"template names a missing special",
       edited([](json& j) { j["post_processor"]["special_tokens"] = json::object(); }), ErrorKind::Corrupt,
       "special token '<|bos|>' of the template is missing"},
      {"template id out of range",
       edited([](json& j) { j["post_processor"]["special_tokens"]["<|bos|>"]["ids"] = {5000}; }),
       ErrorKind::Corrupt, "id 5000 is outside the vocabulary"},
      // 29: malformed byte-fallback tokens, invalid UTF-8 in the vocab
      {"byte token <0x-1>", edited([](json& j) {
         j["model"]["byte_fallback"] = true;
         j["model"]["vocab"]["<0x-1>"] = 272;
       }),
       ErrorKind::Corrupt, "byte-fallback token '<0x-1>'"},
      {"byte token <0xZZ>", edited([](json& j) {
         j["model"]["byte_fallback"] = true;
         j["model"]["vocab"]["<0xZZ>"] = 272;
       }),
       ErrorKind::Corrupt, "byte-fallback token '<0xZZ>'"},
      {"lone surrogate in the vocab",
       raw(R"({"version": "1.0", "model": {"type": "BPE", "vocab": {"\ud800": 0}, "merges": []}})"),
       ErrorKind::Corrupt, "not valid JSON"},
      {"invalid UTF-8 bytes in the vocab",
       raw("{\"version\": \"1.0\", \"model\": {\"vocab\": {\"\xC0\xAF\": 0}}}"), ErrorKind::Corrupt,
       "not valid JSON"},
      // 30: regexes our engine cannot run
      {"regex PCRE2 rejects",
       edited([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(?<=a+)b"; }),
       ErrorKind::Unsupported, "regex '(?<=a+)b' is not supported by PCRE2"},
      {"split behavior unknown",
       edited([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }),
       ErrorKind::Unsupported, "split behavior 'Sideways'"},
      // fields of the wrong JSON type
      {"vocab id as string", edited([](json& j) { j["model"]["vocab"]["zz"] = "7"; }), ErrorKind::Corrupt,
       "id of 'zz' must be an integer"},
      {"lstrip as string", edited([](json& j) { j["added_tokens"][2]["lstrip"] = "yes"; }),
       ErrorKind::Corrupt, "added_tokens[2]: 'lstrip' must be true or false"},
      {"dropout", edited([](json& j) { j["model"]["dropout"] = 0.1; }), ErrorKind::Unsupported,
       "model.dropout"},
      {"broken tokenizer_config.json",
       [](const hs::test::TempDir& d) {
         writeJson(d, [](json&) {});
         d.write("tokenizer_config.json", "<html>");
       },
       ErrorKind::Corrupt, "tokenizer_config.json: not valid JSON"},
      {"not a SentencePiece model",
       [](const hs::test::TempDir& d) {
         d.write("tokenizer.model", "version https://git-lfs.github.com/spec/v1\n");
       },
       ErrorKind::Corrupt, "tokenizer.model: not a SentencePiece model"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      hs::test::TempDir dir;
      c.make(dir);
      try {
        hs::loadTokenizer(dir.str());
        FAIL("loaded without error");
      } catch (const hs::Error& e) {
        INFO(e.what());
        CHECK(e.kind() == c.kind);
        CHECK(std::string(e.what()).find(c.fragment) != std::string::npos);
      }
    }
  }
}

TEST_CASE("missing files are Io errors", "[tokenizer]") {
  hs::test::TempDir dir;
  auto kindOf = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const hs::Error& e) {
      return e.kind();
    }
    return ErrorKind::Internal;
  };
  CHECK(kindOf([&] { hs::loadTokenizer(dir.file("nope")); }) == ErrorKind::Io);
  CHECK(kindOf([&] { hs::loadTokenizer(dir.str()); }) == ErrorKind::Io);
  CHECK(kindOf([&] { hs::loadTokenizerFile(dir.file("tokenizer.json")); }) == ErrorKind::Io);
}

TEST_CASE("bad encode/decode arguments are InvalidArgument", "[tokenizer]") {
  hs::test::TempDir dir;
  dir.write("tokenizer.json", hs::test::tinyTokenizerJson().dump());
  const auto tok = hs::loadTokenizerFile(dir.file("tokenizer.json"));
  auto kindOf = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const hs::Error& e) {
      return e.kind();
    }
    return ErrorKind::Internal;
  };
  CHECK(kindOf([&] { tok->encode("ab\xFF"); }) == ErrorKind::InvalidArgument);
  CHECK(kindOf([&] { tok->decode({5000}); }) == ErrorKind::InvalidArgument);
  CHECK(kindOf([&] { tok->decode({-1}); }) == ErrorKind::InvalidArgument);
  CHECK(kindOf([&] { tok->tokenText(272); }) == ErrorKind::InvalidArgument);
  // Case 31: more than INT32_MAX bytes is refused before any work. The pages are reserved, never
  // touched, so this costs no memory.
  const size_t huge = (size_t{1} << 31) + 16;
  void* pages = mmap(nullptr, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(pages != MAP_FAILED);
  try {
    tok->encode(std::string_view(static_cast<const char*>(pages), huge));
    FAIL("encoded a 2 GiB input");
  } catch (const hs::Error& e) {
    CHECK(e.kind() == ErrorKind::InvalidArgument);
    CHECK(std::string(e.what()).find("too long") != std::string::npos);
  }
  munmap(pages, huge);
}

namespace {

// Every JSON value of `j` by pointer, for the structural mutations below.
void collectPointers(const json& j, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) collectPointers(value, at / key, out);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) collectPointers(j[i], at / i, out);
  }
}

// Loads `bytes` as tokenizer.json and returns whether it loaded; anything but success or hs::Error
// (another exception type) fails the test.
bool loadExpectingOnlyHsErrors(const std::string& bytes, const std::string& label) {
  hs::test::TempDir dir;
  dir.write("tokenizer.json", bytes);
  try {
    const auto tok = hs::loadTokenizer(dir.str());
    tok->encode("Hello <|bos|> world 123 \xF0\x9F\x98\x80");
    tok->decode(tok->encode("the end"), true);
    return true;
  } catch (const hs::Error&) {
    return false;
  } catch (const std::exception& e) {
    FAIL(label << ": escaped as " << e.what());
  }
  return false;
}

}  // namespace

TEST_CASE("mutated tokenizer.json files fail only with hs::Error", "[tokenizer]") {
  const json base = hs::test::tinyTokenizerJson();
  std::vector<json::json_pointer> pointers;
  collectPointers(base, json::json_pointer(), pointers);
  const std::vector<json> replacements = {
      nullptr, 0, -1, 4294967296.0, "x", json::array(), json::object(), true, 1e300, std::string(3000, '<')};
  std::mt19937 rng(1234);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    json mutated = base;
    const auto& at = pointers[rng() % pointers.size()];
    const auto& with = replacements[rng() % replacements.size()];
    if (at.empty()) continue;
    mutated[at] = with;
    (loadExpectingOnlyHsErrors(mutated.dump(), at.to_string() + " = " + with.dump().substr(0, 20))
         ? loaded
         : refused)++;
  }
  const std::string text = base.dump();
  for (int i = 0; i < 200; ++i) {
    std::string bytes = text;
    if (i % 2 == 0) {
      bytes.resize(rng() % bytes.size());  // truncated download
    } else {
      bytes[rng() % bytes.size()] = static_cast<char>(rng() % 256);  // one corrupted byte
    }
    (loadExpectingOnlyHsErrors(bytes, "byte mutation " + std::to_string(i)) ? loaded : refused)++;
  }
  // Both outcomes occur: harmless edits (e.g. a changed vocab string) load, the rest are refused.
  CHECK(loaded > 20);
  CHECK(refused > 200);
}
