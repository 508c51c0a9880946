// headscope tokenize (--model DIR | --tokenizer FILE) --text TEXT: ids on one line, like HF.
#include <iostream>

#include "app/cli/command.h"
#include "inference/tokenizers/tokenizer.h"
#include "kernels/core/error.h"

namespace hs::cli {

namespace {

class TokenizeCommand : public Command {
 public:
  std::string name() const override { return "tokenize"; }
  std::string description() const override {
    return "Print the token ids of a text (the same as Hugging Face tokenizer(text)[\"input_ids\"])";
  }
  void addOptions(CLI::App& sub) override {
    auto* m = sub.add_option("--model", dir_, "model directory holding tokenizer.json or tokenizer.model");
    auto* t = sub.add_option("--tokenizer", file_, "a tokenizer.json or tokenizer.model file");
    m->excludes(t);
    sub.add_option("--text", text_, "text to tokenize")->required();
    sub.add_flag("--no-special-tokens", noSpecial_, "do not run the post-processor (no BOS)");
    sub.add_flag("--decode", decode_, "also print the decoded text on a second line");
  }
  int run() override {
    check(!dir_.empty() || !file_.empty(), ErrorKind::InvalidArgument, "give --model or --tokenizer", {},
          "tokenize");
    const auto tok = dir_.empty() ? loadTokenizerFile(file_) : loadTokenizer(dir_);
    const auto ids = tok->encode(text_, !noSpecial_);
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::cout << line << "\n";
    if (decode_) std::cout << tok->decode(ids, false) << "\n";
    return 0;
  }

 private:
  std::string dir_, file_, text_;
  bool noSpecial_ = false, decode_ = false;
};

}  // namespace

std::unique_ptr<Command> makeTokenizeCommand() { return std::make_unique<TokenizeCommand>(); }

}  // namespace hs::cli
