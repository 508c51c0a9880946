// headscope_bench_cpu: checks the CPU performance requirements side by side in one run.
//   open:    Model::load (+ the first use of the mapped pages) vs one read() of the file's bytes,
//            and the resident memory the load adds (mmap: no second copy of F32 weights).
//   forward: Model::forward vs the same LibTorch ops called directly (bench/direct_forward.h) on
//            the same mapped weights; instrumented (every StatsRequest statistic) vs plain; decode.
// Prints medians and a final table of ratios; docs/performance.md records runs with their command.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "bench/bench_model_dir.h"
#include "bench/direct_forward.h"
#include "bench/every_statistic.h"
#include "bench/host_measures.h"
#include "inference/formats/checkpoint.h"
#include "inference/models/model.h"
#include "kernels/core/error.h"
#include "tests/remove_tree.h"

namespace hs::bench {
namespace {

struct BenchOptions {
  BenchShape shape;
  std::vector<int64_t> tokens{128, 512, 2048};
  int reps = 3, openReps = 5, decodeSteps = 16, threads = 2;
  std::string dir;  // empty: a fresh directory under the system temp dir, removed at the end
  bool keep = false, skipCold = false;
};

// One line of the final table: a measured thing over its reference, by wall and by CPU time
// (NaN where CPU time means nothing, e.g. memory).
struct Ratio {
  std::string what, target;
  double wall, cpu;
};

Ratio ratioOf(const std::string& what, const std::string& target, const Samples& measured,
              const Samples& reference) {
  return {what, target, measured.wallMedian() / reference.wallMedian(),
          measured.cpuMedian() / reference.cpuMedian()};
}

constexpr double kMiB = 1024.0 * 1024.0;

std::unique_ptr<Model> loadModel(const std::string& dir) {
  LoadOptions o;
  o.loadTokenizer = false;  // the benchmark directory has weights and config only
  return Model::load(dir, o);
}

// Page faults of this process so far: minor (page already in memory) and major (read from disk).
std::pair<int64_t, int64_t> pageFaults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return {u.ru_minflt, u.ru_majflt};
}

void timeForward(Model& model, const std::vector<TokenId>& ids, KvCache& cache, const ForwardOptions& o,
                 Samples& out) {
  Stopwatch sw;
  model.forward(ids, cache, o);
  out.add(sw);
}

// ---- open ------------------------------------------------------------------------------------

void benchOpen(const std::string& dir, const std::string& label, const BenchOptions& opt,
               std::vector<Ratio>& table) {
  const std::string file = dir + "/model.safetensors";
  const double fileMiB = static_cast<double>(std::filesystem::file_size(file)) / kMiB;
  const std::vector<TokenId> one{1};
  const bool f32 = label == "F32";
  fmt::print("\n== open {} ({:.1f} MiB) ==\n", label, fileMiB);

  // Warm page cache for both: read() copies from the cache, the mapping faults cached pages in.
  // The open cost is load plus what the first forward pays over a later one (page faults).
  std::vector<char> reused;
  readWholeFile(file, &reused);
  Samples read, copy, load, first, again, open;
  ResidentMemory before, afterLoad, afterUse;
  for (int r = 0; r < opt.openReps; ++r) {
    Stopwatch rs;
    readWholeFile(file);
    read.add(rs);
    Stopwatch cs;
    readWholeFile(file, &reused);
    copy.add(cs);
    ::malloc_trim(0);  // memory freed by earlier repetitions must not hide this load's growth
    const auto m0 = residentMemory();
    const auto f0 = pageFaults();
    Stopwatch ls;
    auto model = loadModel(dir);
    load.add(ls);
    const auto m1 = residentMemory();
    const auto f1 = pageFaults();
    auto cache = model->newCache(1);
    timeForward(*model, one, cache, {}, first);
    const auto m2 = residentMemory();
    const auto f2 = pageFaults();
    auto cache2 = model->newCache(1);
    timeForward(*model, one, cache2, {}, again);
    open.add(load.wall.back() + first.wall.back() - again.wall.back(),
             load.cpu.back() + first.cpu.back() - again.cpu.back());
    // Memory from the second repetition on: the first also pages in LibTorch's and BLAS's code.
    if (r != std::min(1, opt.openReps - 1)) continue;
    before = m0, afterLoad = m1, afterUse = m2;
    fmt::print("page faults (minor/major): load {}/{}, first forward {}/{}; the file has {} pages of 4 KiB\n",
               f1.first - f0.first, f1.second - f0.second, f2.first - f1.first, f2.second - f1.second,
               static_cast<int64_t>(fileMiB * 256));
  }
  fmt::print(
      "warm  read() {:.1f} ms into a new buffer ({:.2f} GiB/s), {:.1f} ms into a reused one ({:.2f} GiB/s)\n",
      1e3 * read.wallMedian(), fileMiB / 1024.0 / read.wallMedian(), 1e3 * copy.wallMedian(),
      fileMiB / 1024.0 / copy.wallMedian());
  fmt::print("warm  Model::load {:.1f} ms; first 1-token forward {:.1f} ms vs {:.1f} ms later\n",
             1e3 * load.wallMedian(), 1e3 * first.wallMedian(), 1e3 * again.wallMedian());
  fmt::print(
      "warm  open cost (load + first use) {:.1f} ms: / read() = {:.2f} wall, {:.2f} cpu; / reused read() = "
      "{:.2f} wall\n",
      1e3 * open.wallMedian(), open.wallMedian() / read.wallMedian(), open.cpuMedian() / read.cpuMedian(),
      open.wallMedian() / copy.wallMedian());
  auto mib = [](int64_t bytes) { return static_cast<double>(bytes) / kMiB; };
  fmt::print("RSS growth after load: anon {:+.1f} MiB, file-backed {:+.1f} MiB\n",
             mib(afterLoad.anon - before.anon), mib(afterLoad.file - before.file));
  const double growth = mib(afterUse.total - before.total);
  fmt::print(
      "RSS growth after load + first forward: anon {:+.1f} MiB, file-backed {:+.1f} MiB, total {:+.1f} MiB = "
      "{:.2f}x the file\n",
      mib(afterUse.anon - before.anon), mib(afterUse.file - before.file), growth, growth / fileMiB);
  table.push_back(ratioOf("open " + label + " warm: (load + first use) / read()",
                          f32 ? "<= ~1" : "(converts to F32)", open, read));
  table.push_back(ratioOf("open " + label + " warm: (load + first use) / reused read()",
                          f32 ? "<= ~1" : "(converts to F32)", open, copy));
  table.push_back({"open " + label + ": RSS growth / file size", f32 ? "<= ~1" : "~3 (F32 copy + mapping)",
                   growth / fileMiB, std::nan("")});
  if (opt.skipCold) return;

  Samples coldRead, coldOpen;
  double cached = 0;
  for (int r = 0; r < opt.openReps; ++r) {
    evictFromPageCache(file);
    cached = std::max(cached, cachedFraction(file));
    Stopwatch rs;
    readWholeFile(file);
    coldRead.add(rs);
    evictFromPageCache(file);
    Stopwatch os;
    auto model = loadModel(dir);
    auto cache = model->newCache(1);
    model->forward(one, cache);
    coldOpen.add(os.seconds() - again.wallMedian(), os.cpuSeconds() - again.cpuMedian());
  }
  fmt::print(
      "cold  (page cache evicted, at most {:.1f}% of pages left) read() {:.1f} ms, load + first use {:.1f} "
      "ms\n",
      100 * cached, 1e3 * coldRead.wallMedian(), 1e3 * coldOpen.wallMedian());
  table.push_back(ratioOf("open " + label + " cold: (load + first use) / read()",
                          f32 ? "<= ~1" : "(converts to F32)", coldOpen, coldRead));
}

// ---- forward ---------------------------------------------------------------------------------

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
    fmt::print(
        "\n== forward (F32 weights, {} threads) ==\nlogits of 64 tokens: max |ours - direct| = {:.2e} "
        "(max |logit| {:.2f})\n",
        at::get_num_threads(), diff, scale);
    check(diff <= 1e-3 * std::max(1.0, scale), ErrorKind::Numerical,
          "Model::forward and the direct forward disagree: the comparison would be meaningless", dir,
          "logits");
  }

  const int64_t decodeContext = *std::max_element(opt.tokens.begin(), opt.tokens.end());
  KvCache decodeCache = model->newCache(1);
  DirectCache decodeDirect;
  for (const int64_t n : opt.tokens) {
    const auto ids = randomIds(n);
    const std::vector<int64_t> ids64(ids.begin(), ids.end());
    Samples ours, floor, stats;
    for (int r = 0; r < opt.reps; ++r) {
      // Alternate who goes first so that drift (other load on the machine) hits both sides alike.
      auto cache = model->newCache(n + opt.decodeSteps);
      auto dcache = direct.newCache(n + opt.decodeSteps);
      auto runDirect = [&] {
        Stopwatch sw;
        direct.forward(ids64, dcache);
        floor.add(sw);
      };
      if (r % 2) runDirect();
      timeForward(*model, ids, cache, {}, ours);
      if (r % 2 == 0) runDirect();
      ForwardHooks hooks;
      hooks.stats = everyStatistic(n, 64);
      ForwardRecord record;
      ForwardOptions instrumented;
      instrumented.hooks = &hooks;
      instrumented.record = &record;
      auto scache = model->newCache(n);
      timeForward(*model, ids, scache, instrumented, stats);
      if (n == decodeContext && r == opt.reps - 1)
        decodeCache = std::move(cache), decodeDirect = std::move(dcache);
    }
    const double tokens = static_cast<double>(n);
    fmt::print(
        "N={:5d}: ours {:8.1f} tok/s, direct {:8.1f} tok/s (wall): ours/direct = {:.3f} wall, {:.3f} cpu\n",
        n, tokens / ours.wallMedian(), tokens / floor.wallMedian(), ours.wallMedian() / floor.wallMedian(),
        ours.cpuMedian() / floor.cpuMedian());
    fmt::print(
        "         instrumented (all statistics, all layers) {:8.1f} tok/s: instrumented/plain = {:.3f} wall, "
        "{:.3f} cpu\n",
        tokens / stats.wallMedian(), stats.wallMedian() / ours.wallMedian(),
        stats.cpuMedian() / ours.cpuMedian());
    table.push_back(ratioOf(fmt::format("forward N={}: ours / direct", n), "<= 1.5", ours, floor));
    table.push_back(ratioOf(fmt::format("forward N={}: instrumented / plain", n), "(report)", stats, ours));
  }

  Samples ours, floor;
  ForwardOptions lastOnly;
  lastOnly.allLogits = false;
  for (int s = 0; s < opt.decodeSteps; ++s) {
    const TokenId id = token(rng);
    timeForward(*model, {id}, decodeCache, lastOnly, ours);
    Stopwatch sw;
    direct.forward({id}, decodeDirect);
    floor.add(sw);
  }
  fmt::print(
      "decode at {} context: ours {:.1f} tok/s, direct {:.1f} tok/s (wall): ours/direct = {:.3f} wall, "
      "{:.3f} "
      "cpu\n",
      decodeContext, 1.0 / ours.wallMedian(), 1.0 / floor.wallMedian(),
      ours.wallMedian() / floor.wallMedian(), ours.cpuMedian() / floor.cpuMedian());
  table.push_back(
      ratioOf(fmt::format("decode at {} context: ours / direct", decodeContext), "<= 1.5", ours, floor));
}

// Writes the F32 and BF16 model directories in a child process, so that the memory the random
// weights took is never part of this process's heap when the open measurements read its RSS.
void writeModelsInChild(const std::string& root, const BenchShape& s) {
  const pid_t child = ::fork();
  check(child >= 0, ErrorKind::Io, "fork failed", root);
  if (child == 0) {
    int code = 0;
    try {
      const auto weights = randomLlamaWeights(s, 1234);
      writeModelDir(root + "/f32", s, weights, DType::F32);
      writeModelDir(root + "/bf16", s, weights, DType::BF16);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error writing the benchmark model: %s\n", e.what());
      code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  check(WIFEXITED(status) && WEXITSTATUS(status) == 0, ErrorKind::Io, "writing the benchmark model failed",
        root);
}

// The model directories the run writes, removed when it ends (also on errors) unless --keep. Only
// what the run created goes: a --dir given by the user keeps everything else in it.
struct ModelDirs {
  std::string root;
  bool ownsRoot, keep;
  ~ModelDirs() {
    if (keep) return;
    std::error_code ignored;
    hs::test::removeTree(root + "/f32");
    hs::test::removeTree(root + "/bf16");
    if (ownsRoot) std::filesystem::remove(root, ignored);
  }
};

int run(const BenchOptions& opt) {
  const auto& s = opt.shape;
  const auto temp =
      std::filesystem::temp_directory_path() / ("headscope-bench-" + std::to_string(::getpid()));
  const ModelDirs dirs{opt.dir.empty() ? temp.string() : opt.dir, opt.dir.empty(), opt.keep};
  const std::string& root = dirs.root;
  {
    Stopwatch sw;
    writeModelsInChild(root, s);  // before this process touches LibTorch: fork and threads do not mix
    fmt::print("wrote {} in {:.1f} s\n", root, sw.seconds());
  }
  at::set_num_threads(opt.threads);
  fmt::print("model: llama hidden {} layers {} heads {}/{} kv mlp {} vocab {}; LibTorch threads {}\n",
             s.hidden, s.layers, s.heads, s.kvHeads, s.mlp, s.vocab, at::get_num_threads());
  std::vector<Ratio> table;
  benchOpen(root + "/f32", "F32", opt, table);
  benchOpen(root + "/bf16", "BF16", opt, table);
  benchForward(root + "/f32", opt, table);

  fmt::print("\n{:<58} {:>7} {:>7}  {}\n", "ratio (medians)", "wall", "cpu", "target");
  for (const auto& r : table)
    fmt::print("{:<58} {:>7.3f} {:>7}  {}\n", r.what, r.wall,
               std::isnan(r.cpu) ? "-" : fmt::format("{:.3f}", r.cpu), r.target);
  return 0;
}

}  // namespace
}  // namespace hs::bench

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines reach a log (tee) as they are printed
  hs::bench::BenchOptions opt;
  CLI::App app{"HeadScope CPU benchmark: model open and forward vs their floors, as ratios"};
  app.add_option("--tokens", opt.tokens,
                 "prompt lengths of the forward comparison (the largest is the decode context)")
      ->delimiter(',');
  app.add_option("--reps", opt.reps, "repetitions per forward measurement (median)")
      ->check(CLI::PositiveNumber);
  app.add_option("--open-reps", opt.openReps, "repetitions per open measurement (median)")
      ->check(CLI::PositiveNumber);
  app.add_option("--decode-steps", opt.decodeSteps, "decode steps after the longest prompt")
      ->check(CLI::PositiveNumber);
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
    hs::check(!opt.tokens.empty(), hs::ErrorKind::InvalidArgument, "no prompt lengths given", {}, "--tokens");
    for (const int64_t n : opt.tokens)
      hs::check(n > 0, hs::ErrorKind::InvalidArgument, "token counts must be positive", {}, "--tokens");
    const auto& s = opt.shape;
    const int64_t longest = *std::max_element(opt.tokens.begin(), opt.tokens.end());
    hs::check(longest + opt.decodeSteps <= s.maxPositions, hs::ErrorKind::InvalidArgument,
              "the longest prompt plus the decode steps is " + std::to_string(longest + opt.decodeSteps) +
                  " tokens, the benchmark model holds " + std::to_string(s.maxPositions),
              {}, "--tokens/--decode-steps");
    hs::check(s.hidden % s.heads == 0 && s.heads % s.kvHeads == 0 && (s.hidden / s.heads) % 2 == 0,
              hs::ErrorKind::InvalidArgument,
              "hidden must split into heads of even size, heads into kv heads", {},
              "--hidden/--heads/--kv-heads");
    return hs::bench::run(opt);
  } catch (const hs::Error& e) {
    std::fprintf(stderr, "error (%s): %s\n", hs::errorKindName(e.kind()), e.what());
    return hs::exitCodeFor(e.kind());
  }
}
