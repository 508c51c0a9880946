#include "inference/tokenizers/normalizer.h"

#include <fmt/format.h>
#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "inference/tokenizers/json_fields.h"
#include "inference/tokenizers/split_regex.h"
#include "inference/tokenizers/utf8_text.h"
#include "kernels/core/error.h"

namespace hs::tok {
namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(utf8proc_option_t options) : options_(options) {}
  void apply(std::string& text) const override {
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                static_cast<utf8proc_ssize_t>(text.size()), &out,
                                static_cast<utf8proc_option_t>(options_ | UTF8PROC_STABLE));
    if (n < 0) throw Error(ErrorKind::Internal, fmt::format("utf8proc failed: {}", utf8proc_errmsg(n)));
    text.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  utf8proc_option_t options_;
};

class Lowercase : public Normalizer {
 public:
  void apply(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const char32_t cp = nextCodePoint(text, i);
      // Rust's char::to_lowercase uses the full mapping: only U+0130 differs from the simple one.
      if (cp == 0x130) {
        out += "i\xCC\x87";
        continue;
      }
      appendUtf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
    }
    text = std::move(out);
  }
};

class Replace : public Normalizer {
 public:
  Replace(std::unique_ptr<SplitRegex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::string& text) const override {
    std::string out;
    size_t last = 0;
    for (const auto& [b, e] : pattern_->findAll(text)) {
      out.append(text, last, b - last);
      out += content_;
      last = e;
    }
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }

 private:
  std::unique_ptr<SplitRegex> pattern_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void apply(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!isUnicodeWhitespace(nextCodePoint(text, i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!isUnicodeWhitespace(nextCodePoint(text, i))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class NormalizerSequence : public Normalizer {
 public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::string& text) const override {
    for (const auto& step : steps_) step->apply(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

// Shared by Replace normalizers/decoders and Split pre-tokenizers: {"String": s} or {"Regex": r}.
std::unique_ptr<SplitRegex> parsePattern(const nlohmann::json& spec, const std::string& file,
                                         const std::string& field) {
  if (!(spec.is_object() && spec.size() == 1))
    throw Error(
        ErrorKind::Corrupt,
        fmt::format("pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, found {}", shortJson(spec)),
        file, field);
  const auto entry = spec.begin();  // a named iterator: a reference through a temporary one dangles to GCC 13
  const std::string kind = entry.key();
  const nlohmann::json& value = entry.value();
  if (!value.is_string())
    throw Error(ErrorKind::Corrupt, fmt::format("pattern must be a string, found {}", shortJson(value)), file,
                field);
  if (!(kind == "String" || kind == "Regex"))
    throw Error(ErrorKind::Unsupported, fmt::format("pattern kind '{}' (expected String or Regex)", kind),
                file, field);
  return std::make_unique<SplitRegex>(value.get<std::string>(), kind == "String", file + ": " + field);
}

std::unique_ptr<Normalizer> parseNormalizer(const nlohmann::json& spec, const std::string& file) {
  if (spec.is_null()) return nullptr;
  const std::string field = "normalizer";
  const std::string type = componentType(spec, file, field);
  if (type == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return std::make_unique<UnicodeForm>(static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::make_unique<UnicodeForm>(
        static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(requireString(spec, "prepend", file, field));
  if (type == "Strip") {
    return std::make_unique<Strip>(optionalBool(spec, "strip_left", true, file, field),
                                   optionalBool(spec, "strip_right", true, file, field));
  }
  if (type == "Replace") {
    check(spec.contains("pattern"), ErrorKind::Corrupt, "Replace needs 'pattern'", file, field);
    return std::make_unique<Replace>(parsePattern(spec["pattern"], file, field + ".pattern"),
                                     requireString(spec, "content", file, field));
  }
  if (type == "Sequence") {
    const auto it = spec.find("normalizers");
    check(it != spec.end() && it->is_array(), ErrorKind::Corrupt, "Sequence needs a 'normalizers' array",
          file, field);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : *it) {
      if (auto n = parseNormalizer(step, file)) steps.push_back(std::move(n));
    }
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  throw Error(
      ErrorKind::Unsupported,
      fmt::format("normalizer type '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
                  "Replace, Prepend, Strip, Sequence)",
                  type),
      file, field);
}

}  // namespace hs::tok
