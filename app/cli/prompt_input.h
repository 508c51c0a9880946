// The prompt options shared by forward and generate: --text or --ids, and the model to load.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "inference/models/model.h"

namespace hs::cli {

struct PromptInput {
  std::string modelDir;
  std::string text;
  std::string ids;
  std::string device = "auto";
  std::string dtype = "auto";
  bool checkWeights = false;

  // Adds --model, --text, --ids (exclusive, one required), --device, --dtype, --check-weights.
  void addOptions(CLI::App& sub);
  // Loads the model (with its tokenizer when --text needs it or one is present).
  std::unique_ptr<Model> loadModel() const;
  // The prompt's token ids: --ids parsed strictly, or --text encoded with special tokens.
  std::vector<TokenId> tokens(const Model& model) const;
};

// Parses "1 2 3" (spaces, commas or newlines between ids); throws InvalidArgument naming the bad item.
std::vector<TokenId> parseIdList(const std::string& text, const std::string& option);

}  // namespace hs::cli
