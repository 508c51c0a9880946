// headscope generate --model DIR (--text T | --ids ...) --max-new-tokens K [--greedy | sampling]
#include <iostream>

#include "app/cli/command.h"
#include "app/cli/prompt_input.h"
#include "inference/generation.h"
#include "kernels/core/error.h"

namespace hs::cli {

namespace {

class GenerateCommand : public Command {
 public:
  std::string name() const override { return "generate"; }
  std::string description() const override { return "Continue a prompt, greedy or sampled, with the KV cache"; }
  void addOptions(CLI::App& sub) override {
    input_.addOptions(sub);
    sub.add_option("--max-new-tokens", maxNew_, "tokens to generate at most")->capture_default_str();
    auto* g = sub.add_flag("--greedy", greedy_, "argmax decoding (the default unless --temperature is given)");
    auto* t = sub.add_option("--temperature", temperature_, "sampling temperature (> 0)");
    sub.add_option("--top-k", topK_, "keep the k most likely tokens (0: all)");
    sub.add_option("--top-p", topP_, "nucleus sampling mass in (0, 1]");
    sub.add_option("--seed", seed_, "random seed for sampling")->capture_default_str();
    sub.add_flag("--print-ids", printIds_, "print the new token ids on one line instead of text");
    sub.add_flag("--ignore-eos", ignoreEos_, "do not stop at the end-of-sequence token");
    g->excludes(t);
  }

  int run() override {
    auto model = input_.loadModel();
    const auto prompt = input_.tokens(*model);
    GenerateOptions o;
    o.maxNewTokens = maxNew_;
    o.stopOnEos = !ignoreEos_;
    o.sampling.greedy = greedy_ || temperature_ <= 0.0;
    o.sampling.temperature = temperature_ > 0.0 ? temperature_ : 1.0;
    o.sampling.topK = topK_;
    o.sampling.topP = topP_;
    o.sampling.seed = seed_;
    if (!greedy_ && temperature_ <= 0.0 && (topK_ > 0 || topP_ < 1.0))
      throw Error(ErrorKind::InvalidArgument, "--top-k/--top-p need --temperature", {}, "--temperature");
    const Tokenizer* tok = model->tokenizer();
    check(printIds_ || tok, ErrorKind::InvalidArgument,
          "the model has no tokenizer to print text with; use --print-ids", model->dir(), "tokenizer");
    std::vector<TokenId> produced;
    std::string printed;
    if (!printIds_) {
      // Stream text as it forms; hold back while the tail is an incomplete UTF-8 sequence.
      o.onToken = [&](TokenId id) {
        produced.push_back(id);
        const std::string text = tok->decode(produced, true);
        const bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
        if (!incomplete && text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0) {
          std::cout << text.substr(printed.size()) << std::flush;
          printed = text;
        }
        return true;
      };
    }
    const auto result = generate(*model, prompt, o);
    if (printIds_) {
      std::string line;
      for (size_t i = 0; i < result.tokens.size(); ++i) line += (i ? " " : "") + std::to_string(result.tokens[i]);
      std::cout << line << "\n";
    } else {
      const std::string text = tok->decode(result.tokens, true);
      if (text.compare(0, printed.size(), printed) == 0) std::cout << text.substr(printed.size());
      std::cout << "\n";
    }
    std::cerr << "[" << result.tokens.size() << " tokens, stopped by " << result.stopReason << "]\n";
    return 0;
  }

 private:
  PromptInput input_;
  int64_t maxNew_ = 32, topK_ = 0;
  double temperature_ = 0.0, topP_ = 1.0;
  uint64_t seed_ = 0;
  bool greedy_ = false, printIds_ = false, ignoreEos_ = false;
};

}  // namespace

std::unique_ptr<Command> makeGenerateCommand() { return std::make_unique<GenerateCommand>(); }

}  // namespace hs::cli
