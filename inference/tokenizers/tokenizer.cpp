// Chooses and loads the tokenizer of a model directory.
#include "inference/tokenizers/tokenizer.h"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "inference/tokenizers/bpe_tokenizer.h"
#include "inference/tokenizers/json_fields.h"
#include "inference/tokenizers/sentencepiece_tokenizer.h"
#include "inference/tokenizers/tokenizer_config.h"
#include "kernels/core/error.h"

namespace hs {
namespace {

namespace fs = std::filesystem;

// Loads tokenizer.json; when it is not byte-level BPE, falls back to `spModel` if that exists.
std::unique_ptr<Tokenizer> loadJson(const std::string& jsonPath, const std::string& spModel) {
  const std::string dir = fs::path(jsonPath).parent_path().string();
  try {
    const auto root = tok::readJsonFile(jsonPath);
    const auto version = root.find("version");
    if (!(version == root.end() || (version->is_string() && version->get<std::string>() == "1.0")))
      throw Error(ErrorKind::Unsupported,
                  fmt::format("tokenizer.json version {} is not supported (expected \"1.0\")",
                              version == root.end() ? "" : tok::shortJson(*version)),
                  jsonPath, "version");
    const std::string other = tok::notByteLevelBpe(root);
    if (other.empty())
      return std::make_unique<tok::BpeTokenizer>(root, jsonPath, tok::readSpecialTokenConfig(dir));
    if (!spModel.empty() && fs::is_regular_file(spModel)) {
      return std::make_unique<tok::SentencePieceTokenizer>(spModel, tok::readSpecialTokenConfig(dir));
    }
    throw Error(
        ErrorKind::Unsupported,
        fmt::format("tokenizer.json holds a {}; HeadScope reads byte-level BPE tokenizer.json files, or a "
                    "SentencePiece tokenizer.model (none beside it)",
                    other),
        jsonPath, "model.type");
  } catch (const nlohmann::json::exception& e) {
    // A field of an unexpected JSON type that a specific check did not catch.
    throw Error(ErrorKind::Corrupt, fmt::format("unexpected JSON structure: {}", e.what()), jsonPath);
  }
}

std::unique_ptr<Tokenizer> loadSentencePiece(const std::string& modelPath) {
  const std::string dir = fs::path(modelPath).parent_path().string();
  try {
    return std::make_unique<tok::SentencePieceTokenizer>(modelPath, tok::readSpecialTokenConfig(dir));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Corrupt, fmt::format("unexpected JSON structure: {}", e.what()),
                (fs::path(dir) / "tokenizer_config.json").string());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> loadTokenizer(const std::string& modelDir) {
  check(fs::is_directory(modelDir), ErrorKind::Io, "model directory not found", modelDir);
  const auto json = (fs::path(modelDir) / "tokenizer.json").string();
  const auto model = (fs::path(modelDir) / "tokenizer.model").string();
  if (fs::exists(json)) return loadJson(json, model);
  if (fs::exists(model)) return loadSentencePiece(model);
  throw Error(ErrorKind::Io, "no tokenizer.json or tokenizer.model in the model directory", modelDir);
}

std::unique_ptr<Tokenizer> loadTokenizerFile(const std::string& path) {
  check(fs::is_regular_file(path), ErrorKind::Io, "file not found", path);
  const auto ext = fs::path(path).extension().string();
  if (ext == ".json") return loadJson(path, "");
  if (ext == ".model") return loadSentencePiece(path);
  throw Error(ErrorKind::InvalidArgument,
              fmt::format("unknown tokenizer file type '{}' (expected .json or .model)", ext), path);
}

}  // namespace hs
