#include "app/cli/prompt_input.h"

#include <ATen/Context.h>

#include <filesystem>
#include <sstream>

#include "kernels/core/error.h"

namespace hs::cli {

void PromptInput::addOptions(CLI::App& sub) {
  sub.add_option("--model", modelDir, "Hugging Face model directory")->required();
  auto* t = sub.add_option("--text", text, "prompt text (tokenized with the model's tokenizer)");
  auto* i = sub.add_option("--ids", ids, "prompt token ids, e.g. \"1 2 3\"");
  t->excludes(i);
  sub.add_option("--device", device, "cpu, cuda[:N], or auto (cuda when there is a GPU)")->capture_default_str();
  sub.add_option("--dtype", dtype, "compute dtype: auto (float32 on cpu, bfloat16 on cuda), float32, bfloat16, float16")
      ->check(CLI::IsMember({"auto", "float32", "bfloat16", "float16"}))
      ->capture_default_str();
  sub.add_flag("--check-weights", checkWeights, "scan all weights for NaN/Inf before running");
}

std::unique_ptr<Model> PromptInput::loadModel() const {
  check(!text.empty() || !ids.empty(), ErrorKind::InvalidArgument, "give the prompt with --text or --ids", {},
        "prompt");
  namespace fs = std::filesystem;
  LoadOptions o;
  o.device = device == "auto" ? (at::hasCUDA() ? "cuda" : "cpu") : device;
  if (dtype == "float32") o.dtype = at::kFloat;
  if (dtype == "bfloat16") o.dtype = at::kBFloat16;
  if (dtype == "float16") o.dtype = at::kHalf;
  o.checkWeights = checkWeights;
  const bool hasTokenizer =
      fs::exists(fs::path(modelDir) / "tokenizer.json") || fs::exists(fs::path(modelDir) / "tokenizer.model");
  o.loadTokenizer = !text.empty() || hasTokenizer;
  return Model::load(modelDir, o);
}

std::vector<TokenId> PromptInput::tokens(const Model& model) const {
  if (!ids.empty()) return parseIdList(ids, "--ids");
  return model.tokenizer()->encode(text, true);
}

std::vector<TokenId> parseIdList(const std::string& textIn, const std::string& option) {
  std::string text = textIn;
  for (char& ch : text)
    if (ch == ',' || ch == '\n' || ch == '\t') ch = ' ';
  std::istringstream in(text);
  std::vector<TokenId> out;
  std::string item;
  while (in >> item) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check(used == item.size() && v >= 0 && v <= 0x7fffffff, ErrorKind::InvalidArgument,
          "'" + item + "' is not a token id (a non-negative integer)", {}, option);
    out.push_back(static_cast<TokenId>(v));
  }
  check(!out.empty(), ErrorKind::InvalidArgument, "no token ids given", {}, option);
  return out;
}

}  // namespace hs::cli
