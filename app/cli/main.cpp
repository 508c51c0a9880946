// The `headscope` command line: registered commands over the same core the GUI uses.
#include <ATen/ATen.h>

#include <iostream>
#include <new>

#include "app/cli/command.h"
#include "kernels/core/error.h"

namespace hs::cli {

std::vector<std::unique_ptr<Command>> builtinCommands() {
  std::vector<std::unique_ptr<Command>> all;
  all.push_back(makeInfoCommand());
  all.push_back(makeTokenizeCommand());
  all.push_back(makeForwardCommand());
  all.push_back(makeGenerateCommand());
  return all;
}

}  // namespace hs::cli

int main(int argc, char** argv) {
  CLI::App app{"HeadScope: attention interpretability for Hugging Face causal LMs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "headscope 0.1.0");
  auto commands = hs::cli::builtinCommands();
  std::vector<std::pair<CLI::App*, hs::cli::Command*>> subs;
  for (auto& c : commands) {
    auto* sub = app.add_subcommand(c->name(), c->description());
    c->addOptions(*sub);
    subs.emplace_back(sub, c.get());
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // usage errors exit 2; --help/--version exit 0
  }
  try {
    for (auto& [sub, cmd] : subs)
      if (sub->parsed()) return cmd->run();
  } catch (const hs::Error& e) {
    std::cerr << "headscope: " << hs::errorKindName(e.kind()) << ": " << e.what() << "\n";
    return hs::exitCodeFor(e.kind());
  } catch (const std::bad_alloc&) {
    std::cerr << "headscope: out of memory\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "headscope: internal error (LibTorch): " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "headscope: error: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
