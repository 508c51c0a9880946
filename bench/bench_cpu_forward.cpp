// headscope_bench_cpu: checks the CPU performance requirements side by side in one run.
//   open:    Model::load (+ the first use of the mapped pages) vs one read() of the file's bytes,
//            and the resident memory the load adds (mmap: no second copy of F32 weights).
//   forward: Model::forward vs the same LibTorch ops called directly (bench/direct_forward.h) on
//            the same mapped weights; instrumented (every StatsRequest statistic) vs plain; decode.
// Prints medians and a final table of ratios; docs/performance.md records runs with their command.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <random>

#include "bench/bench_model_dir.h"
#include "bench/direct_forward.h"
#include "bench/host_measures.h"
#include "inference/formats/checkpoint.h"
#include "inference/models/model.h"
#include "kernels/core/error.h"

namespace hs::bench {
namespace {

struct BenchOptions {
  BenchShape shape;
  std::vector<int64_t> tokens{128, 512, 2048};
  int reps = 3, openReps = 5, decodeSteps = 16, threads = 2;
  std::string dir;  // empty: a fresh directory under the system temp dir, removed at the end
  bool keep = false, skipCold = false;
};

// One line of the final table.
struct Ratio {
  std::string what, target;
  double value;
};

constexpr double kMiB = 1024.0 * 1024.0;

std::unique_ptr<Model> loadModel(const std::string& dir) {
  LoadOptions o;
  o.loadTokenizer = false;  // the benchmark directory has weights and config only
  return Model::load(dir, o);
}

double timeForward(Model& model, const std::vector<TokenId>& ids, KvCache& cache, ForwardOptions o = {}) {
  Stopwatch sw;
  model.forward(ids, cache, o);
  return sw.seconds();
}

// ---- open ------------------------------------------------------------------------------------

void benchOpen(const std::string& dir, const std::string& label, const BenchOptions& opt, std::vector<Ratio>& table) {
  const std::string file = dir + "/model.safetensors";
  const double fileMiB = static_cast<double>(std::filesystem::file_size(file)) / kMiB;
  const std::vector<TokenId> one{1};
  fmt::print("\n== open {} ({:.1f} MiB) ==\n", label, fileMiB);

  // Warm page cache for both: read() copies from the cache, the mapping faults cached pages in.
  readWholeFile(file);
  std::vector<double> readT, loadT, firstT, againT;
  ResidentMemory before, afterLoad, afterUse;
  for (int r = 0; r < opt.openReps; ++r) {
    Stopwatch rs;
    readWholeFile(file);
    readT.push_back(rs.seconds());
    const auto m0 = residentMemory();
    Stopwatch ls;
    auto model = loadModel(dir);
    loadT.push_back(ls.seconds());
    const auto m1 = residentMemory();
    auto cache = model->newCache(1);
    firstT.push_back(timeForward(*model, one, cache));  // faults in every page the forward reads
    const auto m2 = residentMemory();
    auto cache2 = model->newCache(1);
    againT.push_back(timeForward(*model, one, cache2));
    if (r == 0) before = m0, afterLoad = m1, afterUse = m2;
  }
  const double read = median(readT), load = median(loadT), firstUse = median(firstT) - median(againT);
  fmt::print("warm  read() {:8.1f} ms ({:.2f} GiB/s)\n", 1e3 * read, fileMiB / 1024.0 / read);
  fmt::print("warm  Model::load {:8.1f} ms, first 1-token forward {:.1f} ms vs {:.1f} ms warm: first use +{:.1f} ms\n",
             1e3 * load, 1e3 * median(firstT), 1e3 * median(againT), 1e3 * firstUse);
  fmt::print("warm  open cost (load + first use) / read() = {:.2f}\n", (load + firstUse) / read);
  fmt::print("RSS growth after load: anon {:+.1f} MiB, file-backed {:+.1f} MiB\n",
             static_cast<double>(afterLoad.anon - before.anon) / kMiB,
             static_cast<double>(afterLoad.file - before.file) / kMiB);
  fmt::print("RSS growth after load + first forward: anon {:+.1f} MiB, file-backed {:+.1f} MiB, total {:+.1f} MiB "
             "= {:.2f}x the file\n",
             static_cast<double>(afterUse.anon - before.anon) / kMiB,
             static_cast<double>(afterUse.file - before.file) / kMiB,
             static_cast<double>(afterUse.total - before.total) / kMiB,
             static_cast<double>(afterUse.total - before.total) / kMiB / fileMiB);
  table.push_back({"open " + label + " warm: (load + first use) / read()", "<= ~1", (load + firstUse) / read});
  table.push_back({"open " + label + ": RSS growth / file size", label == "F32" ? "<= ~1" : "~3 (BF16->F32)",
                   static_cast<double>(afterUse.total - before.total) / kMiB / fileMiB});
  if (opt.skipCold) return;

  std::vector<double> coldRead, coldOpen;
  double cached = 0;
  for (int r = 0; r < opt.openReps; ++r) {
    evictFromPageCache(file);
    cached = std::max(cached, cachedFraction(file));
    Stopwatch rs;
    readWholeFile(file);
    coldRead.push_back(rs.seconds());
    evictFromPageCache(file);
    Stopwatch os;
    auto model = loadModel(dir);
    auto cache = model->newCache(1);
    model->forward(one, cache);
    coldOpen.push_back(os.seconds() - median(againT));
  }
  fmt::print("cold  (page cache evicted, at most {:.1f}% of pages left) read() {:.1f} ms, load + first use {:.1f} ms\n",
             100 * cached, 1e3 * median(coldRead), 1e3 * median(coldOpen));
  table.push_back({"open " + label + " cold: (load + first use) / read()", "<= ~1", median(coldOpen) / median(coldRead)});
}

// ---- forward ---------------------------------------------------------------------------------

// Every statistic a StatsRequest can ask for, on every layer: the instrumented configuration.
kernels::StatsRequest everyStatistic(int64_t n) {
  kernels::StatsRequest s;
  s.sinkSet = {0, 1, 2, 3};
  s.poolBlock = 64;
  kernels::TargetSet previous{"previous_token", {0}, {}};  // each query's preceding token
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) previous.keys.push_back(i - 1);
    previous.rowStart.push_back(static_cast<int64_t>(previous.keys.size()));
  }
  s.targets.push_back(std::move(previous));
  s.tiles.push_back({0, 0, std::min<int64_t>(n, 64), 0, std::min<int64_t>(n, 64)});
  return s;
}

void benchForward(const std::string& dir, const BenchOptions& opt, std::vector<Ratio>& table) {
  auto model = loadModel(dir);
  auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  DirectForward direct(checkpoint, model->config());
  std::mt19937 rng(7);
  std::uniform_int_distribution<TokenId> token(0, static_cast<TokenId>(model->config().vocabSize - 1));
  auto randomIds = [&](int64_t n) {
    std::vector<TokenId> ids(static_cast<size_t>(n));
    for (auto& id : ids) id = token(rng);
    return ids;
  };

  {  // Same work on both sides: the logits must agree before their timings mean anything.
    const auto ids = randomIds(64);
    auto cache = model->newCache(64);
    auto dcache = direct.newCache(64);
    const auto ours = model->forward(ids, cache);
    const auto floor = direct.forward(std::vector<int64_t>(ids.begin(), ids.end()), dcache);
    const double diff = (ours - floor).abs().max().item<double>(), scale = floor.abs().max().item<double>();
    fmt::print("\n== forward (F32 weights, {} threads) ==\nlogits of 64 tokens: max |ours - direct| = {:.2e} "
               "(max |logit| {:.2f})\n",
               at::get_num_threads(), diff, scale);
    check(diff <= 1e-3 * std::max(1.0, scale), ErrorKind::Numerical,
          "Model::forward and the direct forward disagree: the comparison would be meaningless", dir, "logits");
  }

  const int64_t decodeContext = *std::max_element(opt.tokens.begin(), opt.tokens.end());
  KvCache decodeCache = model->newCache(1);
  DirectCache decodeDirect;
  for (const int64_t n : opt.tokens) {
    const auto ids = randomIds(n);
    const std::vector<int64_t> ids64(ids.begin(), ids.end());
    std::vector<double> oursT, directT, statsT;
    for (int r = 0; r < opt.reps; ++r) {
      // Alternate who goes first so that drift (other load on the machine) hits both sides alike.
      auto cache = model->newCache(n + opt.decodeSteps);
      auto dcache = direct.newCache(n + opt.decodeSteps);
      auto runDirect = [&] {
        Stopwatch sw;
        direct.forward(ids64, dcache);
        directT.push_back(sw.seconds());
      };
      if (r % 2) runDirect();
      oursT.push_back(timeForward(*model, ids, cache));
      if (r % 2 == 0) runDirect();
      ForwardHooks hooks;
      hooks.stats = everyStatistic(n);
      ForwardRecord record;
      ForwardOptions instrumented;
      instrumented.hooks = &hooks;
      instrumented.record = &record;
      auto scache = model->newCache(n);
      statsT.push_back(timeForward(*model, ids, scache, instrumented));
      if (n == decodeContext && r == opt.reps - 1) decodeCache = std::move(cache), decodeDirect = std::move(dcache);
    }
    const double ours = median(oursT), floor = median(directT), stats = median(statsT);
    fmt::print("N={:5d}: ours {:8.1f} tok/s ({:.3f} s), direct {:8.1f} tok/s ({:.3f} s): ours/direct = {:.3f}\n", n,
               static_cast<double>(n) / ours, ours, static_cast<double>(n) / floor, floor, ours / floor);
    fmt::print("         instrumented (all statistics, all layers) {:8.1f} tok/s: instrumented/plain = {:.3f}\n",
               static_cast<double>(n) / stats, stats / ours);
    table.push_back({fmt::format("forward N={}: ours / direct", n), "<= 1.5", ours / floor});
    table.push_back({fmt::format("forward N={}: instrumented / plain", n), "(report)", stats / ours});
  }

  std::vector<double> oursT, directT;
  ForwardOptions lastOnly;
  lastOnly.allLogits = false;
  for (int s = 0; s < opt.decodeSteps; ++s) {
    const TokenId id = token(rng);
    oursT.push_back(timeForward(*model, {id}, decodeCache, lastOnly));
    Stopwatch sw;
    direct.forward({id}, decodeDirect);
    directT.push_back(sw.seconds());
  }
  const double ours = median(oursT), floor = median(directT);
  fmt::print("decode at {} context: ours {:.1f} tok/s, direct {:.1f} tok/s: ours/direct = {:.3f}\n", decodeContext,
             1.0 / ours, 1.0 / floor, ours / floor);
  table.push_back({fmt::format("decode at {} context: ours / direct (time per token)", decodeContext), "<= 1.5",
                   ours / floor});
}

int run(const BenchOptions& opt) {
  at::set_num_threads(opt.threads);
  const auto& s = opt.shape;
  const std::string root = opt.dir.empty() ? (std::filesystem::temp_directory_path() /
                                              ("headscope-bench-" + std::to_string(::getpid())))
                                                 .string()
                                           : opt.dir;
  fmt::print("model: llama hidden {} layers {} heads {}/{} kv mlp {} vocab {}; LibTorch threads {}\n", s.hidden, s.layers,
             s.heads, s.kvHeads, s.mlp, s.vocab, at::get_num_threads());
  {
    Stopwatch sw;
    const auto weights = randomLlamaWeights(s, 1234);
    writeModelDir(root + "/f32", s, weights, DType::F32);
    writeModelDir(root + "/bf16", s, weights, DType::BF16);
    fmt::print("wrote {} in {:.1f} s\n", root, sw.seconds());
  }
  std::vector<Ratio> table;
  benchOpen(root + "/f32", "F32", opt, table);
  benchOpen(root + "/bf16", "BF16", opt, table);
  benchForward(root + "/f32", opt, table);

  fmt::print("\n{:<62} {:>8}  {}\n", "ratio", "value", "target");
  for (const auto& r : table) fmt::print("{:<62} {:>8.3f}  {}\n", r.what, r.value, r.target);
  if (!opt.keep) std::filesystem::remove_all(root);
  return 0;
}

}  // namespace
}  // namespace hs::bench

int main(int argc, char** argv) {
  hs::bench::BenchOptions opt;
  CLI::App app{"HeadScope CPU benchmark: model open and forward vs their floors, as ratios"};
  app.add_option("--tokens", opt.tokens, "prompt lengths of the forward comparison (the largest is the decode context)");
  app.add_option("--reps", opt.reps, "repetitions per forward measurement (median)")->check(CLI::PositiveNumber);
  app.add_option("--open-reps", opt.openReps, "repetitions per open measurement (median)")->check(CLI::PositiveNumber);
  app.add_option("--decode-steps", opt.decodeSteps, "decode steps after the longest prompt")->check(CLI::PositiveNumber);
  app.add_option("--threads", opt.threads, "LibTorch intra-op threads")->check(CLI::PositiveNumber);
  app.add_option("--hidden", opt.shape.hidden)->check(CLI::PositiveNumber);
  app.add_option("--layers", opt.shape.layers)->check(CLI::PositiveNumber);
  app.add_option("--heads", opt.shape.heads)->check(CLI::PositiveNumber);
  app.add_option("--kv-heads", opt.shape.kvHeads)->check(CLI::PositiveNumber);
  app.add_option("--mlp", opt.shape.mlp)->check(CLI::PositiveNumber);
  app.add_option("--vocab", opt.shape.vocab)->check(CLI::PositiveNumber);
  app.add_option("--dir", opt.dir, "where to write the model directories (default: a temp dir)");
  app.add_flag("--keep", opt.keep, "keep the model directories");
  app.add_flag("--skip-cold", opt.skipCold, "skip the cold page cache measurements");
  CLI11_PARSE(app, argc, argv);
  try {
    for (const int64_t n : opt.tokens)
      hs::check(n > 0, hs::ErrorKind::InvalidArgument, "token counts must be positive", {}, "--tokens");
    const auto& s = opt.shape;
    hs::check(s.hidden % s.heads == 0 && s.heads % s.kvHeads == 0 && (s.hidden / s.heads) % 2 == 0,
              hs::ErrorKind::InvalidArgument, "hidden must split into heads of even size, heads into kv heads", {},
              "--hidden/--heads/--kv-heads");
    return hs::bench::run(opt);
  } catch (const hs::Error& e) {
    std::fprintf(stderr, "error (%s): %s\n", hs::errorKindName(e.kind()), e.what());
    return hs::exitCodeFor(e.kind());
  }
}
