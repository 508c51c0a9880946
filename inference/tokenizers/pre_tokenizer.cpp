#include "inference/tokenizers/pre_tokenizer.h"

#include <fmt/format.h>
#include <utf8proc.h>

#include <nlohmann/json.hpp>

#include "inference/tokenizers/byte_level.h"
#include "inference/tokenizers/json_fields.h"
#include "inference/tokenizers/normalizer.h"
#include "inference/tokenizers/split_regex.h"
#include "inference/tokenizers/utf8_text.h"
#include "kernels/core/error.h"

namespace hs::tok {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Split patterns of the families we test for parity against transformers.
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// A (range, isMatch) list covering the whole piece, as HF's Pattern::find_matches returns it.
using Segment = std::pair<MatchRange, bool>;

std::vector<Segment> segmentsOf(const std::vector<MatchRange>& matches, size_t size, bool invert) {
  std::vector<Segment> out;
  size_t prev = 0;
  for (const auto& m : matches) {
    if (prev != m.first) out.push_back({{prev, m.first}, invert});
    out.push_back({m, !invert});
    prev = m.second;
  }
  if (prev != size) out.push_back({{prev, size}, invert});
  return out;
}

// Mirrors NormalizedString::split in tokenizers/src/tokenizer/normalizer.rs.
void splitBy(const std::string& piece, std::vector<Segment> segs, Behavior behavior,
             std::vector<std::string>& out) {
  std::vector<Segment> kept;
  switch (behavior) {
    case Behavior::Isolated:
      for (auto& s : segs) kept.push_back({s.first, false});
      break;
    case Behavior::Removed:
      kept = std::move(segs);
      break;
    case Behavior::Contiguous: {
      bool prevMatch = false;
      for (const auto& [range, isMatch] : segs) {
        if (isMatch == prevMatch && !kept.empty()) {
          kept.back().first.second = range.second;
        } else {
          kept.push_back({range, false});
        }
        prevMatch = isMatch;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prevMatch = false;
      for (const auto& [range, isMatch] : segs) {
        if (isMatch && !prevMatch && !kept.empty()) {
          kept.back().first.second = range.second;
        } else {
          kept.push_back({range, false});
        }
        prevMatch = isMatch;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prevMatch = false;
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        const auto& [range, isMatch] = *it;
        if (isMatch && !prevMatch && !kept.empty()) {
          kept.back().first.first = range.first;
        } else {
          kept.push_back({range, false});
        }
        prevMatch = isMatch;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const auto& [range, remove] : kept) {
    if (!remove && range.second > range.first)
      out.push_back(piece.substr(range.first, range.second - range.first));
  }
}

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool addPrefixSpace, bool useRegex, const std::string& file)
      : addPrefixSpace_(addPrefixSpace),
        regex_(useRegex ? std::make_unique<SplitRegex>(kGpt2Pattern, false, file) : nullptr) {}
  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    out.reserve(pieces.size());
    for (auto& piece : pieces) {
      if (addPrefixSpace_ && (piece.empty() || piece[0] != ' ')) piece.insert(0, " ");
      if (regex_) {
        const size_t first = out.size();
        splitBy(piece, segmentsOf(regex_->findAll(piece), piece.size(), false), Behavior::Isolated, out);
        for (size_t i = first; i < out.size(); ++i) out[i] = byteLevelEncode(out[i]);
      } else if (!piece.empty()) {
        out.push_back(byteLevelEncode(piece));
      }
    }
    pieces = std::move(out);
  }

 private:
  bool addPrefixSpace_;
  std::unique_ptr<SplitRegex> regex_;
};

class SplitPre : public PreTokenizer {
 public:
  SplitPre(std::unique_ptr<SplitRegex> regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    out.reserve(pieces.size());
    for (const auto& piece : pieces) {
      splitBy(piece, segmentsOf(regex_->findAll(piece), piece.size(), invert_), behavior_, out);
    }
    pieces = std::move(out);
  }

 private:
  std::unique_ptr<SplitRegex> regex_;
  Behavior behavior_;
  bool invert_;
};

// Digits: numeric characters (Rust char::is_numeric: Nd, Nl, No) split off alone or in runs.
class DigitsPre : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual) : individual_(individual) {}
  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    for (const auto& piece : pieces) {
      std::vector<MatchRange> matches;
      for (size_t i = 0; i < piece.size();) {
        const size_t start = i;
        const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(nextCodePoint(piece, i)));
        if (cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO) {
          matches.emplace_back(start, i);
        }
      }
      splitBy(piece, segmentsOf(matches, piece.size(), false),
              individual_ ? Behavior::Isolated : Behavior::Contiguous, out);
    }
    pieces = std::move(out);
  }

 private:
  bool individual_;
};

class PreSequence : public PreTokenizer {
 public:
  explicit PreSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(std::vector<std::string>& pieces) const override {
    for (const auto& step : steps_) step->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

Behavior parseBehavior(const std::string& name, const std::string& file, const std::string& field) {
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  throw Error(ErrorKind::Unsupported, fmt::format("split behavior '{}' is not supported", name), file, field);
}

void noteRegexFamily(const nlohmann::json& pattern, PreTokenizerTraits& traits) {
  std::string family = "custom regex";
  if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
    const auto regex = pattern["Regex"].get<std::string>();
    if (regex == kLlama3Pattern) family = "llama3";
    if (regex == kQwen2Pattern) family = "qwen2";
    if (regex == kGpt2Pattern) family = "gpt2";
  }
  if (family == "custom regex") traits.parityUnverified = true;
  if (traits.family.empty()) traits.family = family;
}

}  // namespace

std::unique_ptr<PreTokenizer> parsePreTokenizer(const nlohmann::json& spec, const std::string& file,
                                                PreTokenizerTraits& traits) {
  if (spec.is_null()) return nullptr;
  const std::string field = "pre_tokenizer";
  const std::string type = componentType(spec, file, field);
  if (type == "ByteLevel") {
    const bool useRegex = optionalBool(spec, "use_regex", true, file, field);
    traits.byteLevel = true;
    if (useRegex && traits.family.empty()) traits.family = "gpt2";
    return std::make_unique<ByteLevelPre>(optionalBool(spec, "add_prefix_space", true, file, field), useRegex,
                                          file + ": " + field);
  }
  if (type == "Split") {
    check(spec.contains("pattern"), ErrorKind::Corrupt, "Split needs 'pattern'", file, field);
    noteRegexFamily(spec["pattern"], traits);
    return std::make_unique<SplitPre>(
        parsePattern(spec["pattern"], file, field + ".pattern"),
        parseBehavior(requireString(spec, "behavior", file, field), file, field),
        optionalBool(spec, "invert", false, file, field));
  }
  if (type == "Digits") {
    return std::make_unique<DigitsPre>(optionalBool(spec, "individual_digits", false, file, field));
  }
  if (type == "Sequence") {
    const auto it = spec.find("pretokenizers");
    check(it != spec.end() && it->is_array(), ErrorKind::Corrupt, "Sequence needs a 'pretokenizers' array",
          file, field);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : *it) {
      if (auto p = parsePreTokenizer(step, file, traits)) steps.push_back(std::move(p));
    }
    return std::make_unique<PreSequence>(std::move(steps));
  }
  throw Error(
      ErrorKind::Unsupported,
      fmt::format("pre-tokenizer type '{}' is not supported (supported: ByteLevel, Split, Digits, Sequence)",
                  type),
      file, field);
}

}  // namespace hs::tok
