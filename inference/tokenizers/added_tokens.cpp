#include "inference/tokenizers/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "inference/tokenizers/utf8_text.h"

namespace hs::tok {
namespace {

// The code point that ends at byte `end` (exclusive) of `s`.
char32_t codePointBefore(std::string_view s, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return nextCodePoint(s, start);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), byFirstByte_(256) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (patterns_[i].empty()) continue;  // HF ignores empty added tokens
    byFirstByte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
  }
  for (auto& bucket : byFirstByte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](size_t a, size_t b) { return patterns_[a].size() > patterns_[b].size(); });
  }
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSegment> out;
  size_t emitted = 0;  // end of the last segment pushed
  size_t pos = 0;
  while (pos < text.size()) {
    // Leftmost match start, longest pattern there.
    size_t found = SIZE_MAX;
    for (size_t idx : byFirstByte_[static_cast<unsigned char>(text[pos])]) {
      const auto& p = patterns_[idx];
      if (p.size() <= text.size() - pos && std::memcmp(text.data() + pos, p.data(), p.size()) == 0) {
        found = idx;
        break;
      }
    }
    if (found == SIZE_MAX) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[found];
    size_t start = pos, stop = pos + patterns_[found].size();
    pos = stop;  // the automaton resumes after the match even when it is discarded below
    if (token.singleWord) {
      const bool startOk = start == 0 || !isWordChar(codePointBefore(text, start));
      size_t after = stop;
      const bool stopOk = stop == text.size() || !isWordChar(nextCodePoint(text, after));
      if (!startOk || !stopOk) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t prevStart = s - 1;
        while (prevStart > 0 && (static_cast<unsigned char>(text[prevStart]) & 0xC0) == 0x80) --prevStart;
        size_t i = prevStart;
        if (!isUnicodeWhitespace(nextCodePoint(text, i))) break;
        s = prevStart;
      }
      start = std::max(s, emitted);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t i = stop;
        if (!isUnicodeWhitespace(nextCodePoint(text, i))) break;
        stop = i;
      }
    }
    if (emitted < start) out.push_back({text.substr(emitted, start - emitted), std::nullopt});
    out.push_back({text.substr(start, stop - start), token.id});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), std::nullopt});
  return out;
}

}  // namespace hs::tok
