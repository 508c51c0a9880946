#include "inference/tokenizers/sentencepiece_tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>

#include "inference/tokenizers/sentencepiece_proto.h"
#include "inference/tokenizers/spm_processor.h"
#include "inference/tokenizers/utf8_text.h"
#include "kernels/core/error.h"

namespace hs::tok {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& modelFile, const SpecialTokenConfig& config)
    : file_(modelFile) {
  check(std::filesystem::is_regular_file(modelFile), ErrorKind::Io, "file not found", modelFile);
  std::ifstream in(modelFile, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check(!in.bad(), ErrorKind::Io, "read failed", modelFile);
  std::string loadError;
  sp_ = SpmProcessor::loadSerialized(bytes, &loadError);
  if (!sp_) {
    std::string head = bytes.substr(0, 40);
    for (auto& c : head) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) c = '.';
    }
    throw Error(
        ErrorKind::Corrupt,
        fmt::format("not a SentencePiece model ({}); file starts with \"{}\"; re-download it (a Git LFS "
                    "pointer or an error page saved in its place?)",
                    loadError, head),
        modelFile);
  }
  noPrefix_ = SpmProcessor::loadSerialized(withoutDummyPrefix(bytes, modelFile), &loadError);
  if (!noPrefix_) {
    throw Error(ErrorKind::Corrupt, "cannot reload the model without its dummy prefix: " + loadError,
                modelFile);
  }
  legacy_ = config.legacy.value_or(true);
  addBos_ = config.addBosToken.value_or(true);
  addEos_ = config.addEosToken.value_or(false);
  if (config.bosToken) {
    bos_ = requirePiece(*config.bosToken, config.configFile, "bos_token");
  } else if (sp_->bos_id() >= 0) {
    bos_ = sp_->bos_id();
  }
  std::optional<TokenId> eos;
  if (config.eosToken) {
    eos = requirePiece(*config.eosToken, config.configFile, "eos_token");
  } else if (sp_->eos_id() >= 0) {
    eos = sp_->eos_id();
  }
  if (eos) eos_.push_back(*eos);
  for (const auto& [name, id] : config.eosIdsFromModel) {
    if (id >= vocabSize())
      throw Error(ErrorKind::Corrupt,
                  fmt::format("eos_token_id {} is outside the vocabulary [0, {})", id, vocabSize()), name,
                  "eos_token_id");
    if (std::find(eos_.begin(), eos_.end(), static_cast<TokenId>(id)) == eos_.end())
      eos_.push_back(static_cast<TokenId>(id));
  }
  check(!addBos_ || bos_.has_value(), ErrorKind::Corrupt,
        "add_bos_token is true but the model has no BOS piece", config.configFile, "add_bos_token");
  check(!addEos_ || eos.has_value(), ErrorKind::Corrupt,
        "add_eos_token is true but the model has no EOS piece", config.configFile, "add_eos_token");

  // Control pieces (<s>, </s>) written in the text are tokens for HF, while SentencePiece would spell
  // them out character by character; named tokens of tokenizer_config.json likewise.
  std::vector<AddedToken> specials;
  std::vector<std::string> patterns;
  auto addSpecial = [&](TokenId id, const std::string& piece) {
    for (const auto& t : specials) {
      if (t.content == piece) return;
    }
    AddedToken t;
    t.id = id;
    t.content = piece;
    t.special = true;
    t.normalized = false;
    specials.push_back(t);
    patterns.push_back(piece);
  };
  for (int id = 0; id < sp_->GetPieceSize(); ++id) {
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) addSpecial(id, sp_->IdToPiece(id));
  }
  for (const auto& named : config.namedTokens) {
    addSpecial(requirePiece(named.content, config.configFile, named.field), named.content);
  }
  specials_ = std::make_unique<AddedTokenMatcher>(std::move(specials), std::move(patterns));
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

TokenId SentencePieceTokenizer::requirePiece(const std::string& piece, const std::string& file,
                                             const std::string& field) const {
  const int id = sp_->PieceToId(piece);
  // PieceToId answers unk_id for unknown pieces; only the unk piece itself may map there.
  if (!(id >= 0 && (id != sp_->unk_id() || sp_->IdToPiece(id) == piece)))
    throw Error(ErrorKind::Corrupt, fmt::format("token '{}' is not a piece of {}", piece, file_), file,
                field);
  return id;
}

std::vector<TokenId> SentencePieceTokenizer::encode(std::string_view text, bool addSpecialTokens) const {
  if (text.size() > static_cast<size_t>(INT32_MAX))
    throw Error(
        ErrorKind::InvalidArgument,
        fmt::format("input of {} bytes is too long to tokenize (limit {} bytes)", text.size(), INT32_MAX));
  const size_t bad = firstInvalidUtf8(text);
  if (bad != std::string_view::npos)
    throw Error(ErrorKind::InvalidArgument,
                fmt::format("input text is not valid UTF-8 (byte {} of {})", bad, text.size()));
  std::vector<TokenId> ids;
  if (addSpecialTokens && addBos_) ids.push_back(*bos_);
  for (const auto& segment : specials_->split(text)) {
    if (segment.token) {
      ids.push_back(*segment.token);
      continue;
    }
    // transformers' Metaspace: "▁" is prepended unless the piece already starts with a space, and
    // with legacy=false only when the piece starts the text.
    const bool startsWithSpace = segment.text[0] == ' ' || segment.text.rfind("\xE2\x96\x81", 0) == 0;
    const bool atStart = segment.text.data() == text.data();
    const SpmProcessor& sp = !startsWithSpace && (legacy_ || atStart) ? *sp_ : *noPrefix_;
    std::vector<int> pieceIds;
    std::string error;
    if (!sp.Encode(std::string(segment.text), &pieceIds, &error)) {
      throw Error(ErrorKind::Internal, "SentencePiece encode failed: " + error, file_);
    }
    ids.insert(ids.end(), pieceIds.begin(), pieceIds.end());
  }
  if (addSpecialTokens && addEos_) ids.push_back(eos_.front());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<TokenId>& ids, bool skipSpecialTokens) const {
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string text;
    std::string error;
    if (!sp_->Decode(run, &text, &error)) {
      throw Error(ErrorKind::Internal, "SentencePiece decode failed: " + error, file_);
    }
    out += text;
    run.clear();
  };
  for (const TokenId id : ids) {
    if (!(id >= 0 && id < vocabSize()))
      throw Error(ErrorKind::InvalidArgument,
                  fmt::format("token id {} is outside the vocabulary [0, {})", id, vocabSize()));
    if (sp_->IsControl(id)) {
      flush();
      if (!skipSpecialTokens) out += sp_->IdToPiece(id);
    } else if (!(skipSpecialTokens && sp_->IsUnknown(id))) {
      run.push_back(id);
    }
  }
  flush();
  return out;
}

std::string SentencePieceTokenizer::tokenText(TokenId id) const {
  if (!(id >= 0 && id < vocabSize()))
    throw Error(ErrorKind::InvalidArgument,
                fmt::format("token id {} is outside the vocabulary [0, {})", id, vocabSize()));
  return sp_->IdToPiece(id);
}

int64_t SentencePieceTokenizer::vocabSize() const {
  return sp_->GetPieceSize();
}

bool SentencePieceTokenizer::isSpecial(TokenId id) const {
  return id >= 0 && id < vocabSize() && (sp_->IsControl(id) || sp_->IsUnknown(id));
}

}  // namespace hs::tok
