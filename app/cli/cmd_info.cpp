// headscope info --model DIR: what a checkpoint is, without converting its weights.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <set>

#include "app/cli/command.h"
#include "inference/formats/checkpoint.h"
#include "inference/formats/model_config.h"
#include "inference/tokenizers/tokenizer.h"

namespace hs::cli {

namespace {

class InfoCommand : public Command {
 public:
  std::string name() const override { return "info"; }
  std::string description() const override { return "Show a model's architecture, sizes, dtype and tokenizer"; }
  void addOptions(CLI::App& sub) override {
    sub.add_option("--model", dir_, "Hugging Face model directory")->required();
  }
  int run() override {
    const ModelConfig c = loadModelConfig(dir_);
    const Checkpoint ckpt = Checkpoint::open(dir_);
    int64_t params = 0;
    std::set<std::string> dtypes;
    for (const auto& n : ckpt.names()) {
      const TensorView* t = ckpt.find(n);
      params += t->numel();
      dtypes.insert(dtypeName(t->dtype));
    }
    std::string dtype;
    for (const auto& d : dtypes) dtype += (dtype.empty() ? "" : "+") + d;
    std::string tokenizerKind = "none";
    namespace fs = std::filesystem;
    if (fs::exists(fs::path(dir_) / "tokenizer.json") || fs::exists(fs::path(dir_) / "tokenizer.model"))
      tokenizerKind = loadTokenizer(dir_)->kind();
    int64_t windowed = 0;
    for (int64_t w : c.slidingWindow) windowed += w > 0;
    const char* rope[] = {"default", "linear", "dynamic", "llama3"};
    fmt::print("model:          {}\n", dir_);
    fmt::print("architecture:   {} ({})\n", c.modelType, c.architectures.empty() ? "-" : c.architectures.front());
    fmt::print("layers:         {}\n", c.numLayers);
    fmt::print("heads:          {}\n", c.numHeads);
    fmt::print("kv heads:       {}\n", c.numKvHeads);
    fmt::print("head_dim:       {}\n", c.headDim);
    fmt::print("hidden size:    {}\n", c.hiddenSize);
    fmt::print("mlp size:       {}\n", c.intermediateSize);
    fmt::print("vocab:          {}\n", c.vocabSize);
    fmt::print("max positions:  {}\n", c.maxPositions);
    fmt::print("rope:           {} (theta {}{})\n", rope[static_cast<int>(c.rope.type)], c.rope.theta,
               c.rope.type == RopeType::Default ? "" : fmt::format(", factor {}", c.rope.factor));
    fmt::print("sliding window: {}\n",
               windowed ? fmt::format("{} of {} layers", windowed, c.numLayers) : std::string("none"));
    fmt::print("tied embedding: {}\n", c.tieWordEmbeddings ? "yes" : "no");
    fmt::print("dtype:          {}\n", dtype);
    fmt::print("parameters:     {} ({:.2f} M)\n", params, static_cast<double>(params) / 1e6);
    fmt::print("weights bytes:  {}\n", ckpt.totalBytes());
    fmt::print("tokenizer:      {}\n", tokenizerKind);
    for (const auto& w : ckpt.warnings()) std::cerr << "headscope: warning: " << w << "\n";
    return 0;
  }

 private:
  std::string dir_;
};

}  // namespace

std::unique_ptr<Command> makeInfoCommand() { return std::make_unique<InfoCommand>(); }

}  // namespace hs::cli
