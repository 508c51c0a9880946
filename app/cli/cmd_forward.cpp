// headscope forward --model DIR (--text T | --ids "...") --dump OUTDIR [--attn] [--stats]
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "analysis/head_summary.h"
#include "app/cli/command.h"
#include "app/cli/prompt_input.h"
#include "inference/formats/npy.h"
#include "kernels/core/error.h"

namespace hs::cli {

namespace {

class ForwardCommand : public Command {
 public:
  std::string name() const override { return "forward"; }
  std::string description() const override {
    return "Run one forward pass and write logits (and attention maps / head statistics) as .npy/.json";
  }
  void addOptions(CLI::App& sub) override {
    input_.addOptions(sub);
    sub.add_option("--dump", outDir_, "output directory for logits.npy, ids.npy (and attn.npy)")->required();
    sub.add_flag("--attn", attn_, "also write attn.npy, float32 [layers, heads, N, N] (small prompts only)");
    sub.add_flag("--stats", stats_, "also write head_stats.json: per-head sink mass, entropy, induction, ...");
  }

  int run() override {
    auto model = input_.loadModel();
    const auto ids = input_.tokens(*model);
    const auto& c = model->config();
    const int64_t n = static_cast<int64_t>(ids.size());
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(outDir_, ec);
    check(!ec && fs::is_directory(outDir_), ErrorKind::Io, "cannot create output directory: " + ec.message(),
          outDir_);

    ForwardHooks hooks;
    ForwardRecord record;
    at::Tensor attn;
    if (attn_) {
      const int64_t bytes = c.numLayers * c.numHeads * n * n * 4;
      check(bytes <= (int64_t{8} << 30), ErrorKind::OutOfMemory,
            fmt::format("attn.npy for {} tokens would take {} MiB; use --stats (O(N) per head) or a shorter prompt",
                        n, bytes >> 20),
            {}, "--attn");
      attn = at::zeros({c.numLayers, c.numHeads, n, n}, at::kFloat);
      hooks.probe = [&attn](int layer, int64_t first, const at::Tensor& probs) {
        attn[layer].narrow(1, first, probs.size(1)).copy_(probs);
      };
    }
    if (stats_) hooks.stats = analysis::summaryRequest(ids);
    ForwardOptions fo;
    fo.hooks = &hooks;
    fo.record = &record;
    auto cache = model->newCache(n);
    const auto logits = model->forward(ids, cache, fo).to(at::kCPU).contiguous();

    writeNpy((fs::path(outDir_) / "logits.npy").string(), logits.data_ptr<float>(), {n, c.vocabSize});
    std::vector<int64_t> ids64(ids.begin(), ids.end());
    writeNpy((fs::path(outDir_) / "ids.npy").string(), ids64.data(), {n});
    if (attn_) writeNpy((fs::path(outDir_) / "attn.npy").string(), attn.data_ptr<float>(), attn.sizes().vec());
    if (stats_) {
      const auto scores = analysis::summarizeHeads(record, ids, static_cast<int>(c.numLayers),
                                                   static_cast<int>(c.numHeads));
      const auto path = (fs::path(outDir_) / "head_stats.json").string();
      std::ofstream out(path);
      out << analysis::headScoresJson(scores) << "\n";
      check(out.good(), ErrorKind::Io, "cannot write", path);
    }
    for (const auto& w : model->warnings()) std::cerr << "headscope: warning: " << w << "\n";
    fmt::print("{} tokens -> {}\n", n, outDir_);
    return 0;
  }

 private:
  PromptInput input_;
  std::string outDir_;
  bool attn_ = false, stats_ = false;
};

}  // namespace

std::unique_ptr<Command> makeForwardCommand() { return std::make_unique<ForwardCommand>(); }

}  // namespace hs::cli
