// Added-token matching: leftmost-longest, single_word, lstrip/rstrip (HF AddedVocabulary).
#include "inference/tokenizers/added_tokens.h"
#include "tests/catch.hpp"

using namespace hs::tok;

namespace {
AddedToken token(hs::TokenId id, const char* content, bool singleWord = false, bool lstrip = false,
                 bool rstrip = false) {
  AddedToken t;
  t.id = id;
  t.content = content;
  t.singleWord = singleWord;
  t.lstrip = lstrip;
  t.rstrip = rstrip;
  return t;
}
// Segments rendered as "text" or "[id:text]".
std::vector<std::string> render(const AddedTokenMatcher& m, std::string_view text) {
  std::vector<std::string> out;
  for (const auto& s : m.split(text)) {
    out.push_back(s.token ? "[" + std::to_string(*s.token) + ":" + std::string(s.text) + "]"
                          : std::string(s.text));
  }
  return out;
}
AddedTokenMatcher matcher(std::vector<AddedToken> tokens) {
  std::vector<std::string> patterns;
  for (const auto& t : tokens) patterns.push_back(t.content);
  return AddedTokenMatcher(std::move(tokens), std::move(patterns));
}
using Segs = std::vector<std::string>;
}  // namespace

TEST_CASE("leftmost match wins, then the longest there", "[added_tokens]") {
  const auto m = matcher({token(1, "<a>"), token(2, "<a><b>"), token(3, "b>c")});
  CHECK(render(m, "x<a><b>y") == Segs{"x", "[2:<a><b>]", "y"});
  CHECK(render(m, "<a>b>c") == Segs{"[1:<a>]", "[3:b>c]"});  // matching resumes after <a>
  const auto overlap = matcher({token(1, "ab"), token(2, "bcd")});
  CHECK(render(overlap, "abcd") == Segs{"[1:ab]", "cd"});  // "ab" starts first, so "bcd" is never seen
  CHECK(render(m, "") == Segs{});
  CHECK(render(m, "plain") == Segs{"plain"});
}

TEST_CASE("single_word needs non-word characters around the match", "[added_tokens]") {
  const auto m = matcher({token(7, "Bob", true)});
  CHECK(render(m, "Bob's") == Segs{"[7:Bob]", "'s"});
  CHECK(render(m, "Bobby Bob") == Segs{"Bobby ", "[7:Bob]"});
  CHECK(render(m,
               "caf\xC3\xA9"
               "Bob") == Segs{"caf\xC3\xA9"
                              "Bob"});  // é is a word character
}

TEST_CASE("lstrip and rstrip absorb Unicode whitespace around the token", "[added_tokens]") {
  const auto m = matcher({token(5, "<sep>", false, true, true), token(6, "<l>", false, true, false)});
  CHECK(render(m, "a  <sep>\t b") == Segs{"a", "[5:  <sep>\t ]", "b"});
  CHECK(render(m, "a\xE3\x80\x80<l> b") == Segs{"a", "[6:\xE3\x80\x80<l>]", " b"});  // U+3000
  // The spaces before <l> were already taken by <sep>'s rstrip.
  CHECK(render(m, "<sep>  <l>") == Segs{"[5:<sep>  ]", "[6:<l>]"});
}
