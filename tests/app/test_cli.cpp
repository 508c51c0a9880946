// The headscope binary end to end: outputs against the HF fixtures, exit codes and messages for
// bad invocations and bad inputs.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "inference/formats/npy.h"
#include "tests/catch.hpp"
#include "tests/formats/scratch_dir.h"

namespace {

struct Run {
  int code;
  std::string out;  // stdout and stderr together
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Run headscope(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + std::string(HS_CLI) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

nlohmann::json expected(const std::string& name) {
  std::ifstream in(hs::test::fixture("parity/" + name + "/expected.json"));
  return nlohmann::json::parse(in);
}

std::string modelDir(const std::string& name) { return hs::test::fixture("parity/" + name + "/model"); }

std::string joinIds(const nlohmann::json& ids) {
  std::string s;
  for (const auto& id : ids) s += (s.empty() ? "" : " ") + std::to_string(id.get<int>());
  return s;
}

}  // namespace

TEST_CASE("tokenize prints HF's ids", "[cli]") {
  for (const std::string name : {"llama3_bpe", "qwen2_dynamic", "llama2_spm"}) {
    const auto e = expected(name);
    for (size_t i = 0; i < 3; ++i) {
      const auto& t = e["tokenize"][i];
      const auto r = headscope("tokenize --model " + modelDir(name) + " --text " + quote(t["text"].get<std::string>()));
      CHECK(r.code == 0);
      CHECK(r.out == joinIds(t["ids"]) + "\n");
    }
  }
}

TEST_CASE("info describes a checkpoint", "[cli]") {
  const auto r = headscope("info --model " + modelDir("qwen3_qknorm"));
  CHECK(r.code == 0);
  CHECK_THAT(r.out, hs::test::HasSubstring("qwen3"));
  CHECK_THAT(r.out, hs::test::HasSubstring("kv heads:       1"));
  CHECK_THAT(r.out, hs::test::HasSubstring("head_dim:       32"));
  CHECK_THAT(r.out, hs::test::HasSubstring("BF16"));
}

TEST_CASE("forward --dump writes HF's logits and attention as .npy", "[cli]") {
  const auto e = expected("mistral_swa");
  const auto& f = e["forward"][0];
  hs::test::ScratchDir out;
  const auto r = headscope("forward --model " + modelDir("mistral_swa") + " --ids " + quote(joinIds(f["ids"])) +
                           " --dump " + out.path() + " --attn --stats");
  REQUIRE(r.code == 0);
  const auto logits = hs::readNpy(out.file("logits.npy")).asFloat();
  const auto ref = hs::readNpy(hs::test::fixture("parity/mistral_swa/" + f["logits"].get<std::string>())).asFloat();
  REQUIRE(logits.size() == ref.size());
  float maxAbs = 0, maxDiff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    maxAbs = std::max(maxAbs, std::abs(ref[i]));
    maxDiff = std::max(maxDiff, std::abs(ref[i] - logits[i]));
  }
  CHECK(maxDiff / maxAbs < 1e-4f);
  const auto attn = hs::readNpy(out.file("attn.npy"));
  const auto refAttn = hs::readNpy(hs::test::fixture("parity/mistral_swa/" + f["attn"].get<std::string>()));
  CHECK(attn.shape == refAttn.shape);
  std::ifstream stats(out.file("head_stats.json"));
  const auto s = nlohmann::json::parse(stats);
  CHECK(s["scores"]["sink_mass"].size() == 2);
}

TEST_CASE("generate --greedy --print-ids gives HF's greedy tokens", "[cli]") {
  const auto e = expected("qwen3_qknorm");
  const auto& g = e["generate"][0];
  const auto r = headscope("generate --model " + modelDir("qwen3_qknorm") + " --ids " + quote(joinIds(g["ids"])) +
                           " --greedy --print-ids --max-new-tokens " + std::to_string(g["max_new_tokens"].get<int>()));
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Matchers::StartsWith(joinIds(g["greedy"]) + "\n"));
  // Sampling is reproducible with a seed.
  const std::string sample = "generate --model " + modelDir("qwen3_qknorm") + " --ids '1 2 3' --temperature 0.9 " +
                             "--top-k 50 --top-p 0.9 --seed 11 --print-ids --max-new-tokens 10";
  CHECK(headscope(sample).out == headscope(sample).out);
}

TEST_CASE("bad invocations exit 2, bad inputs exit 1, with the culprit named", "[cli][errors]") {
  struct Row {
    std::string args, env;
    int code;
    std::string fragment;
  };
  const std::string m = modelDir("llama3_bpe");
  const std::vector<Row> rows{
      {"", "", 2, "subcommand"},
      {"frobnicate", "", 2, "subcommand"},
      {"generate --model " + m, "", 2, "--text or --ids"},
      {"generate --model " + m + " --ids '1 x 3'", "", 2, "'x' is not a token id"},
      {"generate --model " + m + " --ids '1 99999'", "", 2, "token id 99999"},
      {"generate --model " + m + " --ids 1 --temperature 0 --top-k 3", "", 2, "--temperature"},
      {"forward --model /nonexistent/model --ids 1 --dump /tmp/x", "", 1, "/nonexistent/model"},
      {"info --model " + hs::test::fixture("parity"), "", 1, "config.json"},
      {"tokenize --tokenizer /nonexistent/tokenizer.json --text hi", "", 1, "/nonexistent/tokenizer.json"},
      {"forward --model " + m + " --text hello --dump /tmp/hs_cli_oom", "HEADSCOPE_HOST_MEMORY_MB=100", 1,
       "tokens would fit"},
      {"generate --model " + m + " --device tpu --ids 1", "", 2, "tpu"},
  };
  for (const auto& row : rows) {
    INFO("headscope " << row.args);
    const auto r = headscope(row.args, row.env);
    CHECK(r.code == row.code);
    CHECK_THAT(r.out, hs::test::HasSubstring(row.fragment));
  }
}

TEST_CASE("a prompt longer than max_position_embeddings is refused", "[cli][errors]") {
  std::string ids = "1";
  for (int i = 0; i < 300; ++i) ids += " 5";  // llama3_bpe allows 256 positions
  const auto r = headscope("forward --model " + modelDir("llama3_bpe") + " --ids " + quote(ids) + " --dump /tmp/hs_cli_long");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, hs::test::HasSubstring("max_position_embeddings"));
}
