// A compiled PCRE2 pattern (UTF, Unicode properties, JIT) that lists its matches in a text.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hs::tok {

// Byte range [first, second) of one match.
using MatchRange = std::pair<size_t, size_t>;

// Thread-safe after construction: each call uses thread-local match data.
class SplitRegex {
 public:
  // Compiles `pattern` (regex syntax, or a literal when `literal`). Rewrites \s and \S to also
  // cover U+0085 as Oniguruma (HF's engine) does. Throws Unsupported naming `where` on failure.
  SplitRegex(const std::string& pattern, bool literal, const std::string& where);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // All non-overlapping matches, left to right (`text` must be valid UTF-8).
  std::vector<MatchRange> findAll(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::string pattern_;
  std::unique_ptr<Code> code_;
};

// Oniguruma-compatible form of a pattern for PCRE2 (exposed for tests).
std::string onigCompatiblePattern(const std::string& pattern);

}  // namespace hs::tok
