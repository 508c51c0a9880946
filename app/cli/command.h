// A `headscope` subcommand: registers its options on a CLI11 subcommand and runs.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hs::cli {

class Command {
 public:
  virtual ~Command() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  // Declares the options on `sub` (bound to members of the command).
  virtual void addOptions(CLI::App& sub) = 0;
  // Runs after parsing; returns the exit code. Throws hs::Error on failure.
  virtual int run() = 0;
};

// Every built-in command, in the order `headscope --help` lists them.
std::vector<std::unique_ptr<Command>> builtinCommands();

std::unique_ptr<Command> makeInfoCommand();
std::unique_ptr<Command> makeTokenizeCommand();
std::unique_ptr<Command> makeForwardCommand();
std::unique_ptr<Command> makeGenerateCommand();

}  // namespace hs::cli
