#include "inference/tokenizers/post_processor.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "inference/tokenizers/byte_level.h"
#include "inference/tokenizers/json_fields.h"
#include "inference/tokenizers/normalizer.h"
#include "inference/tokenizers/split_regex.h"
#include "inference/tokenizers/utf8_text.h"
#include "kernels/core/error.h"

namespace hs::tok {
namespace {

class AffixProcessor : public PostProcessor {
 public:
  AffixProcessor(std::vector<TokenId> prefix, std::vector<TokenId> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  std::vector<TokenId> apply(std::vector<TokenId> ids) const override {
    std::vector<TokenId> out;
    out.reserve(prefix_.size() + ids.size() + suffix_.size());
    out.insert(out.end(), prefix_.begin(), prefix_.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), suffix_.begin(), suffix_.end());
    return out;
  }
  std::vector<TokenId> prefixIds() const override { return prefix_; }
  std::vector<TokenId> suffixIds() const override { return suffix_; }

 private:
  std::vector<TokenId> prefix_, suffix_;
};

TokenId checkedId(const nlohmann::json& v, int64_t vocabSize, const std::string& file,
                  const std::string& field) {
  if (!v.is_number_integer())
    throw Error(ErrorKind::Corrupt, fmt::format("expected an integer id, found {}", shortJson(v)), file,
                field);
  const int64_t id = v.get<int64_t>();
  if (!(id >= 0 && id < vocabSize))
    throw Error(ErrorKind::Corrupt, fmt::format("id {} is outside the vocabulary [0, {})", id, vocabSize),
                file, field);
  return static_cast<TokenId>(id);
}

// TemplateProcessing "single": pieces given as objects or as the string form "<s>:0 $A:0".
std::unique_ptr<PostProcessor> parseTemplate(const nlohmann::json& spec, const std::string& file,
                                             int64_t vocabSize) {
  const std::string field = "post_processor.single";
  const auto single = spec.find("single");
  check(single != spec.end(), ErrorKind::Corrupt, "TemplateProcessing needs 'single'", file,
        "post_processor");
  std::vector<std::pair<bool, std::string>> pieces;  // (isSequence, special token name)
  if (single->is_string()) {
    std::istringstream words(single->get<std::string>());
    for (std::string w; words >> w;) {
      const auto colon = w.rfind(':');
      if (colon != std::string::npos && colon > 0) w = w.substr(0, colon);
      pieces.push_back({w[0] == '$', w});
    }
  } else {
    if (!single->is_array())
      throw Error(ErrorKind::Corrupt, fmt::format("expected a list, found {}", shortJson(*single)), file,
                  field);
    for (const auto& piece : *single) {
      if (!(piece.is_object() && piece.size() == 1))
        throw Error(
            ErrorKind::Corrupt,
            fmt::format("template piece must be {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}, found {}",
                        shortJson(piece)),
            file, field);
      const auto entry = piece.begin();  // named, as in normalizer.cpp (GCC 13's -Wdangling-reference)
      const std::string kind = entry.key();
      const nlohmann::json& body = entry.value();
      if (!(kind == "SpecialToken" || kind == "Sequence"))
        throw Error(ErrorKind::Unsupported, fmt::format("template piece '{}'", kind), file, field);
      pieces.push_back(
          {kind == "Sequence", kind == "Sequence" ? "$A" : requireString(body, "id", file, field)});
    }
  }
  const auto specials = spec.value("special_tokens", nlohmann::json::object());
  std::vector<TokenId> prefix, suffix;
  bool seenSequence = false;
  for (const auto& [isSequence, name] : pieces) {
    if (isSequence) {
      check(!seenSequence, ErrorKind::Unsupported, "single template names the sequence twice", file, field);
      seenSequence = true;
      continue;
    }
    const auto it = specials.find(name);
    if (!(it != specials.end() && it->is_object() && it->contains("ids") && (*it)["ids"].is_array()))
      throw Error(ErrorKind::Corrupt,
                  fmt::format("special token '{}' of the template is missing from special_tokens", name),
                  file, "post_processor.special_tokens");
    for (const auto& id : (*it)["ids"]) {
      (seenSequence ? suffix : prefix)
          .push_back(checkedId(id, vocabSize, file, "post_processor.special_tokens." + name));
    }
  }
  check(seenSequence, ErrorKind::Corrupt, "single template has no $A sequence", file, field);
  return std::make_unique<AffixProcessor>(std::move(prefix), std::move(suffix));
}

// BertProcessing / RobertaProcessing: {"cls": [token, id], "sep": [token, id]} around the sequence.
std::unique_ptr<PostProcessor> parseClsSep(const nlohmann::json& spec, const std::string& file,
                                           int64_t vocabSize) {
  auto idOf = [&](const char* key) {
    const auto it = spec.find(key);
    if (!(it != spec.end() && it->is_array() && it->size() == 2))
      throw Error(ErrorKind::Corrupt, fmt::format("'{}' must be [token, id]", key), file,
                  std::string("post_processor.") + key);
    return checkedId((*it)[1], vocabSize, file, std::string("post_processor.") + key);
  };
  return std::make_unique<AffixProcessor>(std::vector<TokenId>{idOf("cls")},
                                          std::vector<TokenId>{idOf("sep")});
}

}  // namespace

std::unique_ptr<PostProcessor> makeAffixProcessor(std::vector<TokenId> prefix, std::vector<TokenId> suffix) {
  return std::make_unique<AffixProcessor>(std::move(prefix), std::move(suffix));
}

std::unique_ptr<PostProcessor> parsePostProcessor(const nlohmann::json& spec, const std::string& file,
                                                  int64_t vocabSize) {
  if (spec.is_null()) return nullptr;
  const std::string type = componentType(spec, file, "post_processor");
  if (type == "TemplateProcessing") return parseTemplate(spec, file, vocabSize);
  if (type == "ByteLevel") return makeAffixProcessor({}, {});  // only adjusts offsets
  if (type == "BertProcessing" || type == "RobertaProcessing") return parseClsSep(spec, file, vocabSize);
  if (type == "Sequence") {
    const auto it = spec.find("processors");
    check(it != spec.end() && it->is_array(), ErrorKind::Corrupt, "Sequence needs a 'processors' array", file,
          "post_processor");
    std::vector<TokenId> prefix, suffix;
    for (const auto& step : *it) {
      if (auto p = parsePostProcessor(step, file, vocabSize)) {
        auto pre = p->prefixIds(), suf = p->suffixIds();
        prefix.insert(prefix.begin(), pre.begin(), pre.end());
        suffix.insert(suffix.end(), suf.begin(), suf.end());
      }
    }
    return makeAffixProcessor(std::move(prefix), std::move(suffix));
  }
  throw Error(
      ErrorKind::Unsupported,
      fmt::format("post-processor type '{}' is not supported (supported: TemplateProcessing, ByteLevel, "
                  "BertProcessing, RobertaProcessing, Sequence)",
                  type),
      file, "post_processor");
}

namespace {

class ByteLevelDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      if (auto decoded = byteLevelDecodeToken(t)) {
        bytes += *decoded;
      } else {
        bytes += t;
      }
    }
    tokens.assign(1, utf8Lossy(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<SplitRegex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::string out;
      size_t last = 0;
      for (const auto& [b, e] : pattern_->findAll(t)) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::unique_ptr<SplitRegex> pattern_;
  std::string content_;
};

// Runs of "<0xNN>" tokens become their bytes when those form valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&] {
      if (count == 0) return;
      if (firstInvalidUtf8(bytes) == std::string::npos) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < count; ++i) out.push_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      count = 0;
    };
    for (auto& t : tokens) {
      int value = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        try {
          size_t used = 0;
          value = std::stoi(t.substr(3, 2), &used, 16);
          if (used != 2) value = -1;
        } catch (const std::exception&) {
          value = -1;
        }
      }
      if (value >= 0) {
        bytes += static_cast<char>(value);
        ++count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

// Strip: removes up to `start` leading and `stop` trailing copies of one character per token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t i = 0;
           i < start_ && e - b >= content_.size() && t.compare(b, content_.size(), content_) == 0; ++i)
        b += content_.size();
      for (size_t i = 0; i < stop_ && e - b >= content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class DecoderSequence : public Decoder {
 public:
  explicit DecoderSequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->apply(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> parseDecoder(const nlohmann::json& spec, const std::string& file) {
  if (spec.is_null()) return nullptr;
  const std::string field = "decoder";
  const std::string type = componentType(spec, file, field);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    check(spec.contains("pattern"), ErrorKind::Corrupt, "Replace needs 'pattern'", file, field);
    return std::make_unique<ReplaceDecoder>(parsePattern(spec["pattern"], file, field + ".pattern"),
                                            requireString(spec, "content", file, field));
  }
  if (type == "Strip") {
    const auto start = spec.value("start", 0), stop = spec.value("stop", 0);
    check(start >= 0 && stop >= 0, ErrorKind::Corrupt, "Strip start/stop must be non-negative", file, field);
    return std::make_unique<StripDecoder>(requireString(spec, "content", file, field),
                                          static_cast<size_t>(start), static_cast<size_t>(stop));
  }
  if (type == "Sequence") {
    const auto it = spec.find("decoders");
    check(it != spec.end() && it->is_array(), ErrorKind::Corrupt, "Sequence needs a 'decoders' array", file,
          field);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& step : *it) {
      if (auto d = parseDecoder(step, file)) steps.push_back(std::move(d));
    }
    return std::make_unique<DecoderSequence>(std::move(steps));
  }
  throw Error(
      ErrorKind::Unsupported,
      fmt::format("decoder type '{}' is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, "
                  "Strip, Sequence)",
                  type),
      file, field);
}

}  // namespace hs::tok
