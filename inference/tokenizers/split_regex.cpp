#include "inference/tokenizers/split_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

#include "kernels/core/error.h"

namespace hs::tok {

std::string onigCompatiblePattern(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool inClass = false;
  size_t classStart = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        out += inClass ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (e == 'S' && !inClass) {
        out += "[^\\s\\x{85}]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!inClass && c == '[') {
      inClass = true;
      classStart = out.size() + 1;
    } else if (inClass && c == ']') {
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      const size_t pos = out.size();
      const bool first = pos == classStart || (pos == classStart + 1 && out[classStart] == '^');
      if (!first) inClass = false;
    }
    out += c;
  }
  return out;
}

struct SplitRegex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Per-thread scratch: one ovector pair is enough since only the whole match is used. The JIT stack
// is larger than PCRE2's 32 KiB default so that long whitespace or digit runs cannot exhaust it.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchScratch() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

std::string pcreMessage(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

SplitRegex::SplitRegex(const std::string& pattern, bool literal, const std::string& where)
    : pattern_(pattern), code_(std::make_unique<Code>()) {
  const std::string compiled = literal ? pattern : onigCompatiblePattern(pattern);
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
  if (literal) options = PCRE2_LITERAL | PCRE2_UTF | PCRE2_NO_UTF_CHECK;
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options, &error,
                              &offset, nullptr);
  if (code_->code == nullptr)
    throw Error(ErrorKind::Unsupported,
                fmt::format("regex '{}' is not supported by PCRE2 ({} at offset {})", pattern,
                            pcreMessage(error), offset),
                where);
  code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

SplitRegex::~SplitRegex() = default;

std::vector<MatchRange> SplitRegex::findAll(std::string_view text) const {
  std::vector<MatchRange> matches;
  auto& s = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc =
        code_->jit
            ? pcre2_jit_match(code_->code, subject, text.size(), start, 0, s.data, s.context)
            : pcre2_match(code_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0)
      throw Error(ErrorKind::Internal,
                  fmt::format("regex '{}' failed while matching: {}", pattern_, pcreMessage(rc)));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    const size_t b = ov[0], e = ov[1];
    if (e > b) matches.emplace_back(b, e);
    if (e > start) {
      start = e;
    } else {
      // Empty match: step over one whole UTF-8 character.
      if (start >= text.size()) break;
      ++start;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    }
  }
  return matches;
}

}  // namespace hs::tok
