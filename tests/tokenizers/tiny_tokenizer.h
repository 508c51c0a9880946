// Hand-built tokenizer.json files for the tokenizer tests, small enough to derive ids by hand.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "inference/tokenizers/byte_level.h"
#include "tests/remove_tree.h"

namespace hs::test {

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ =
        std::filesystem::temp_directory_path() / ("hs_tok_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    removeTree(path_);
  }
  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(file(name), std::ios::binary) << bytes;
  }

 private:
  std::filesystem::path path_;
};

// Byte-level vocabulary character of byte `b` (GPT-2 table, checked in test_byte_level.cpp).
inline std::string bl(unsigned char b) {
  return tok::byteLevelEncode(std::string(1, static_cast<char>(b)));
}

// The tiny Llama-3-style tokenizer: id b for byte b (0..255), then these merges in rank order:
//   0 Ġ+t=256  1 h+e=257  2 Ġt+he=258  3 l+l=259  4 e+ll=260  5 h+ell=261  6 ll+o=262  7 1+2=263
//   8 Ġ+Ġ=264  9 ĠĠ+ĠĠ=265  10 a+a=266  11 aa+aa=267
// added tokens: 268 <|bos|> (special), 269 <|eot|> (special), 270 <sep> (lstrip+rstrip),
// 271 Bob (single_word); NFC normalizer; Llama-3 Split regex + ByteLevel(use_regex=false);
// template "<|bos|> $A"; ByteLevel decoder.
inline nlohmann::json tinyTokenizerJson() {
  using nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[bl(static_cast<unsigned char>(b))] = b;
  const std::string G = bl(' ');
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"},    {"h", "e"}, {G + "t", "he"}, {"l", "l"},     {"e", "ll"}, {"h", "ell"},
      {"ll", "o"}, {"1", "2"}, {G, G},          {G + G, G + G}, {"a", "a"},  {"aa", "aa"}};
  json mergeList = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    vocab[a + b] = next++;
    mergeList.push_back(json::array({a, b}));
  }
  auto added = [](int id, const char* content, bool special, bool lstrip = false, bool rstrip = false,
                  bool singleWord = false) {
    return json{{"id", id},         {"content", content},  {"single_word", singleWord}, {"lstrip", lstrip},
                {"rstrip", rstrip}, {"normalized", false}, {"special", special}};
  };
  const char* llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  return json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       json::array({added(268, "<|bos|>", true), added(269, "<|eot|>", true),
                    added(270, "<sep>", false, true, true), added(271, "Bob", false, false, false, true)})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers", json::array({json{{"type", "Split"},
                                            {"pattern", {{"Regex", llama3}}},
                                            {"behavior", "Isolated"},
                                            {"invert", false}},
                                       json{{"type", "ByteLevel"},
                                            {"add_prefix_space", false},
                                            {"trim_offsets", true},
                                            {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({json{{"SpecialToken", {{"id", "<|bos|>"}, {"type_id", 0}}}},
                                json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array()},
        {"special_tokens", {{"<|bos|>", {{"id", "<|bos|>"}, {"ids", {268}}, {"tokens", {"<|bos|>"}}}}}}}},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", mergeList}}}};
}

}  // namespace hs::test
