// headscope_bench_gpu: the GPU issue's benchmark, from one run, on a Llama-3-8B-shaped model whose
// random weights are made on the device (Model::randomInit, bf16 on CUDA):
//   forward: for each N, Model::forward plain (no hooks, last logits only), instrumented (every
//            statistic of every head of every layer, pooled maps of at most 256x256 cells included)
//            and the SDPA reference on the same weight tensors (bench/sdpa_forward.h): median wall
//            time of the timed runs after
//            warm-up, the allocator's peak memory of each, instrumented/plain and plain/reference;
//   decode:  tokens/s of greedy single-token steps and KV bytes at the given contexts, full cache vs
//            the hybrid cache whose streaming KV heads keep sink + window (DuoAttention).
// A row that runs out of memory prints "OOM: <message>" and the run goes on. A time budget skips
// runs predicted to overrun it (say so in the table). Prints markdown tables; --json writes them.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "bench/device_measures.h"
#include "bench/every_statistic.h"
#include "bench/host_measures.h"
#include "bench/sdpa_forward.h"
#include "inference/formats/model_config.h"
#include "inference/models/model.h"
#include "kernels/core/error.h"

namespace hs::bench {
namespace {

struct Options {
  std::string device, dtype;  // empty: cuda when available, else cpu; bf16 on cuda, fp32 on cpu
  std::vector<int64_t> tokens{4096, 8192, 16384, 32768, 65536, 131072};
  int64_t layers = 32, hidden = 4096, heads = 32, kvHeads = 8, headDim = 0, mlp = 14336, vocab = 128256;
  double ropeTheta = 500000.0;
  int timedRuns = 3, warmup = 1;
  std::vector<int64_t> decodeContexts{32768, 131072};
  int decodeSteps = 32;
  int64_t sink = 64, window = 256;
  double streamingFraction = 0.5;
  std::string decodeFill = "random";  // random | prefill
  double budgetSeconds = 420;
  std::string json;
  bool skipForward = false, skipDecode = false;
  uint64_t seed = 1;
};

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The first line of an error, prefixed with "OOM: " for allocation failures.
std::string describe(const std::exception& e, bool outOfMemory) {
  std::string what = e.what();
  what = what.substr(0, what.find('\n'));
  return (outOfMemory ? "OOM: " : "error: ") + what;
}

// Runs fn; returns an empty string, or the failure as describe() says it. Allocation failures and
// HeadScope errors are rows of the table, not the end of the run.
template <typename Fn>
std::string guarded(Fn&& fn) {
  try {
    fn();
    return {};
  } catch (const c10::OutOfMemoryError& e) {
    return describe(e, true);
  } catch (const Error& e) {
    return describe(e, e.kind() == ErrorKind::OutOfMemory);
  } catch (const c10::Error& e) {
    return describe(e, false);
  }
}

// The wall-clock budget: a run starts only if its predicted time still fits.
class Budget {
 public:
  explicit Budget(double seconds) : limit_(seconds), start_(Clock::now()) {}
  bool allows(double predicted) const { return secondsSince(start_) + predicted <= limit_; }
  double elapsed() const { return secondsSince(start_); }

 private:
  double limit_;
  Clock::time_point start_;
};

// ---- forward -------------------------------------------------------------------------------------

enum class Variant { Plain, Instrumented, Reference };
const char* variantName(Variant v) {
  return v == Variant::Plain ? "plain" : v == Variant::Instrumented ? "instrumented" : "sdpa_reference";
}

struct Cell {
  std::vector<double> seconds;  // timed runs
  int64_t peakBytes = -1;       // largest peak over the runs
  std::string error;            // "OOM: ..." when it did not run
  bool skipped = false;         // the budget did not allow a single timed run
  double median() const { return seconds.empty() ? std::nan("") : bench::median(seconds); }
};

struct ForwardRow {
  int64_t tokens = 0;
  Cell cells[3];
};

// Predicts a run's time from the last one of the same variant: the same at the same N, scaled by
// (N / N_last)^2 for a longer prompt (attention is quadratic; an overestimate for short prompts).
struct Predictor {
  double seconds = 0;
  int64_t tokens = 0;
  double predict(int64_t n) const {
    if (tokens == 0) return 0;
    const double ratio = static_cast<double>(n) / static_cast<double>(tokens);
    return seconds * std::max(1.0, ratio * ratio);
  }
};

class ForwardBench {
 public:
  ForwardBench(Model& model, const Options& opt, Budget& budget)
      : model_(model), reference_(model), opt_(opt), budget_(budget) {}

  std::vector<ForwardRow> run(std::mt19937& rng) {
    std::vector<ForwardRow> rows;
    for (const int64_t n : opt_.tokens) {
      std::uniform_int_distribution<int64_t> token(0, model_.config().vocabSize - 1);
      std::vector<int64_t> ids(static_cast<size_t>(n));
      for (auto& id : ids) id = token(rng);
      ForwardRow row;
      row.tokens = n;
      const auto stats = everyStatistic(n, mapBlock(n));
      const int rounds = opt_.warmup + opt_.timedRuns;
      for (int r = 0; r < rounds; ++r) {
        const bool timed = r >= opt_.warmup;
        for (const Variant v : {Variant::Plain, Variant::Instrumented, Variant::Reference}) {
          Cell& cell = row.cells[static_cast<int>(v)];
          if (!cell.error.empty()) continue;
          if (!budget_.allows(predictors_[static_cast<int>(v)].predict(n))) continue;
          double seconds = 0;
          int64_t peak = -1;
          cell.error = guarded([&] { seconds = once(v, ids, stats, peak); });
          if (!cell.error.empty()) {
            fmt::print("N={} {}: {}\n", n, variantName(v), cell.error);
            continue;
          }
          predictors_[static_cast<int>(v)] = {seconds, n};
          fmt::print("N={} {} {}: {:.1f} ms, peak {}\n", n, variantName(v), timed ? "run" : "warm-up",
                     1e3 * seconds,
                     peak < 0 ? "n/a" : fmt::format("{:.2f} GiB", static_cast<double>(peak) / kGiB));
          if (!timed) continue;
          cell.seconds.push_back(seconds);
          cell.peakBytes = std::max(cell.peakBytes, peak);
        }
      }
      for (auto& cell : row.cells) cell.skipped = cell.error.empty() && cell.seconds.empty();
      rows.push_back(std::move(row));
    }
    return rows;
  }

  // Last-token logits of ours and of the reference on the same short prompt: the timings compare the
  // same computation only if these agree (bf16 rounding differs between the two op sequences).
  nlohmann::json agreement(int64_t n, std::mt19937& rng) {
    std::uniform_int_distribution<int64_t> token(0, model_.config().vocabSize - 1);
    std::vector<int64_t> ids(static_cast<size_t>(n));
    for (auto& id : ids) id = token(rng);
    auto cache = model_.newCache(n);
    ForwardOptions o;
    o.allLogits = false;
    const auto ours =
        model_.forward({ids.begin(), ids.end()}, cache, o).to(at::kCPU).to(at::kDouble).flatten();
    const auto ref = reference_.prefill(ids).to(at::kCPU).to(at::kDouble).flatten();
    const double cosine = (ours.dot(ref) / (ours.norm() * ref.norm())).item<double>();
    const double maxDiff = (ours - ref).abs().max().item<double>(), scale = ref.abs().max().item<double>();
    const bool sameTop = ours.argmax().item<int64_t>() == ref.argmax().item<int64_t>();
    fmt::print(
        "agreement at N={}: logits cosine {:.6f}, max |ours - reference| {:.3g} (max |logit| {:.3g}), {}\n",
        n, cosine, maxDiff, scale, sameTop ? "same top token" : "DIFFERENT top token");
    if (cosine < 0.99)
      fmt::print("WARNING: ours and the reference disagree; their timings are not comparable\n");
    return {{"tokens", n},
            {"cosine", cosine},
            {"max_abs_diff", maxDiff},
            {"max_abs_logit", scale},
            {"same_top_token", sameTop}};
  }

 private:
  double once(Variant v, const std::vector<int64_t>& ids, const kernels::StatsRequest& stats, int64_t& peak) {
    const at::Device device = model_.device();
    const int64_t n = static_cast<int64_t>(ids.size());
    const std::vector<TokenId> tokens(ids.begin(), ids.end());
    synchronize(device);
    resetPeakMemory(device);
    const auto t0 = Clock::now();
    at::Tensor logits;
    if (v == Variant::Reference) {
      logits = reference_.prefill(ids);
    } else {
      auto cache = model_.newCache(n);
      ForwardHooks hooks;
      ForwardRecord record;
      ForwardOptions o;
      o.allLogits = false;
      if (v == Variant::Instrumented) {
        hooks.stats = stats;
        o.hooks = &hooks;
        o.record = &record;
      }
      logits = model_.forward(tokens, cache, o);
    }
    (void)logits.sum().item<double>();  // waits for the device
    const double seconds = secondsSince(t0);
    peak = peakMemoryBytes(device);
    return seconds;
  }

  Model& model_;
  SdpaForward reference_;
  const Options& opt_;
  Budget& budget_;
  Predictor predictors_[3];
};

// ---- decode --------------------------------------------------------------------------------------

struct DecodeCell {
  std::vector<double> stepSeconds;
  int64_t kvBytes = -1, kvAllocatedBytes = -1, peakBytes = -1;
  std::string error;
  double tokensPerSecond() const { return stepSeconds.empty() ? std::nan("") : 1.0 / median(stepSeconds); }
};

struct DecodeRow {
  int64_t context = 0;
  DecodeCell full, hybrid, instrumented;  // instrumented: the full cache, every statistic but pooled maps
};

// Streaming KV heads spread over the heads: fraction 0.5 of 8 gives {0, 2, 4, 6}.
std::vector<int> streamingHeads(int64_t kvHeads, double fraction) {
  const auto count = static_cast<int64_t>(std::llround(fraction * static_cast<double>(kvHeads)));
  std::vector<int> heads;
  for (int64_t j = 0; j < count; ++j) heads.push_back(static_cast<int>(j * kvHeads / count));
  return heads;
}

// Fills the cache with `context` tokens: random post-RoPE keys and values (the step's time does not
// depend on their values), or a prefill of random ids.
void fillCache(Model& model, KvCache& cache, int64_t context, const std::string& how, std::mt19937& rng) {
  const auto& c = model.config();
  if (how == "prefill") {
    std::uniform_int_distribution<TokenId> token(0, static_cast<TokenId>(c.vocabSize - 1));
    std::vector<TokenId> ids(static_cast<size_t>(context));
    for (auto& id : ids) id = token(rng);
    ForwardOptions o;
    o.allLogits = false;
    model.forward(ids, cache, o);
    return;
  }
  at::NoGradGuard noGrad;
  const auto opts = at::TensorOptions().dtype(model.computeDtype()).device(model.device());
  for (int l = 0; l < cache.layers(); ++l) {
    const auto k = at::randn({c.numKvHeads, context, c.headDim}, opts), v = at::randn_like(k);
    if (cache.streamingHeads(l) > 0)
      cache.stage(l, k, v, c.groupSize());
    else
      cache.append(l, k, v);
  }
  cache.commit(context);
}

// The statistics of one decode step at position pos (every layer): sink set {0..3}, every row
// statistic, column and band sums, the previous token as a target set, the probabilities of the
// query over the first 64 keys; no pooled maps (they cover every position: O((N/B)^2) per head and
// step).
kernels::StatsRequest decodeStatistics(int64_t pos) {
  kernels::StatsRequest s;
  s.sinkSet = {0, 1, 2, 3};
  s.targets.push_back({"previous_token", {0, 1}, {pos - 1}});
  s.tiles.push_back({0, pos, pos + 1, 0, std::min<int64_t>(pos + 1, 64)});
  return s;
}

// Greedy single-token steps after `context` tokens; instrumented: with decodeStatistics every step.
DecodeCell decodeOnce(Model& model, const Options& opt, int64_t context, const HybridLayout& layout,
                      std::mt19937& rng, bool instrumented = false) {
  DecodeCell cell;
  const at::Device device = model.device();
  constexpr int kWarmupSteps = 2;
  cell.error = guarded([&] {
    auto cache = model.newCache(context + kWarmupSteps + opt.decodeSteps, layout);
    fillCache(model, cache, context, opt.decodeFill, rng);
    cell.kvBytes = cache.bytes();
    cell.kvAllocatedBytes = cache.allocatedBytes();
    ForwardOptions o;
    o.allLogits = false;
    TokenId next = static_cast<TokenId>(rng() % static_cast<uint32_t>(model.config().vocabSize));
    synchronize(device);
    resetPeakMemory(device);
    for (int s = 0; s < kWarmupSteps + opt.decodeSteps; ++s) {
      const auto t0 = Clock::now();
      ForwardHooks hooks;
      ForwardRecord record;  // one step's statistics (column sums of every head: 4 nk bytes each)
      if (instrumented) {
        hooks.stats = decodeStatistics(context + s);
        o.hooks = &hooks, o.record = &record;
      }
      const auto logits = model.forward({next}, cache, o);           // waits for the statistics
      next = static_cast<TokenId>(logits.argmax().item<int64_t>());  // greedy; waits for the device
      if (s >= kWarmupSteps) cell.stepSeconds.push_back(secondsSince(t0));
    }
    cell.peakBytes = peakMemoryBytes(device);
  });
  return cell;
}

// The hybrid cache against full attention with the same heads masked to sink + window
// (HeadMask, the instrumented kernels on CUDA): a prompt past sink + window, then greedy steps. The
// decode timings mean something only if these agree.
nlohmann::json hybridAgreement(Model& model, const HybridLayout& layout, std::mt19937& rng) {
  const auto& c = model.config();
  const int64_t prompt = std::min<int64_t>(c.maxPositions - 8, layout.sink + layout.window + 64), steps = 4;
  std::uniform_int_distribution<TokenId> token(0, static_cast<TokenId>(c.vocabSize - 1));
  std::vector<TokenId> ids(static_cast<size_t>(prompt));
  for (auto& id : ids) id = token(rng);
  ForwardOptions last;
  last.allLogits = false;
  auto hybrid = model.newCache(prompt + steps, layout);
  std::vector<at::Tensor> rows{model.forward(ids, hybrid, last)};
  for (int s = 0; s < steps; ++s) {
    ids.push_back(static_cast<TokenId>(rows.back().argmax().item<int64_t>()));
    rows.push_back(model.forward({ids.back()}, hybrid, last));
  }
  ForwardHooks masked;
  for (int l = 0; l < static_cast<int>(c.numLayers); ++l)
    for (const int g : layout.streamingKvHeads[static_cast<size_t>(l)])
      for (int64_t i = 0; i < c.groupSize(); ++i)
        masked.edits[l].masks.emplace_back(static_cast<int>(g * c.groupSize() + i),
                                           kernels::HeadMask::sinkWindow(layout.sink, layout.window));
  ForwardOptions all;
  all.hooks = &masked;
  auto full = model.newCache(prompt + steps);
  const auto ref =
      model.forward(ids, full, all).narrow(0, prompt - 1, steps + 1).to(at::kCPU).to(at::kDouble);
  const auto got = at::cat(rows, 0).to(at::kCPU).to(at::kDouble);
  const auto cosine = ((got * ref).sum(1) / (got.norm(2, 1) * ref.norm(2, 1))).min().item<double>();
  const double maxDiff = (got - ref).abs().max().item<double>();
  fmt::print(
      "hybrid cache vs masked full attention ({} prompt tokens + {} steps): min logits cosine {:.6f}, max "
      "|diff| {:.3g}\n",
      prompt, steps, cosine, maxDiff);
  if (cosine < 0.99) fmt::print("WARNING: the hybrid decode disagrees with masked full attention\n");
  return {{"prompt", prompt}, {"steps", steps}, {"min_cosine", cosine}, {"max_abs_diff", maxDiff}};
}

std::vector<DecodeRow> benchDecode(Model& model, const Options& opt, std::mt19937& rng, nlohmann::json& out) {
  const auto layout = HybridLayout::uniform(static_cast<int>(model.config().numLayers),
                                            streamingHeads(model.config().numKvHeads, opt.streamingFraction),
                                            opt.sink, opt.window);
  if (!layout.empty()) {
    const std::string failed =
        guarded([&] { out["hybrid_agreement"] = hybridAgreement(model, layout, rng); });
    if (!failed.empty()) fmt::print("hybrid agreement check: {}\n", failed);
  }
  std::vector<DecodeRow> rows;
  for (const int64_t context : opt.decodeContexts) {
    DecodeRow row;
    row.context = context;
    for (const int kind : {0, 1, 2}) {  // full, hybrid, full with statistics
      const bool hybrid = kind == 1, instrumented = kind == 2;
      const char* name = hybrid ? "hybrid" : instrumented ? "full, instrumented" : "full";
      DecodeCell& cell = hybrid ? row.hybrid : instrumented ? row.instrumented : row.full;
      cell = decodeOnce(model, opt, context, hybrid ? layout : HybridLayout{}, rng, instrumented);
      if (!cell.error.empty())
        fmt::print("decode at {} ({}): {}\n", context, name, cell.error);
      else
        fmt::print("decode at {} ({}): {:.1f} tokens/s, KV {:.3f} GiB\n", context, name,
                   cell.tokensPerSecond(), static_cast<double>(cell.kvBytes) / kGiB);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// ---- output --------------------------------------------------------------------------------------

std::string gib(int64_t bytes, int digits = 2) {
  return bytes < 0 ? "n/a" : fmt::format("{:.{}f}", static_cast<double>(bytes) / kGiB, digits);
}
std::string ms(const Cell& c) {
  if (!c.error.empty()) return c.error.rfind("OOM", 0) == 0 ? "OOM" : "error";
  if (c.skipped) return "skipped (budget)";
  return fmt::format("{:.1f} ({} run{})", 1e3 * c.median(), c.seconds.size(),
                     c.seconds.size() == 1 ? "" : "s");
}
std::string ratio(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? "-" : fmt::format("{:.3f}", a / b);
}

nlohmann::json cellJson(const Cell& c) {
  nlohmann::json j{{"runs_s", c.seconds}, {"peak_bytes", c.peakBytes}, {"skipped", c.skipped}};
  j["median_s"] = c.seconds.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.median());
  if (!c.error.empty()) j["error"] = c.error;
  return j;
}

nlohmann::json decodeJson(const DecodeCell& c) {
  nlohmann::json j{{"step_s", c.stepSeconds},
                   {"kv_bytes", c.kvBytes},
                   {"kv_allocated_bytes", c.kvAllocatedBytes},
                   {"peak_bytes", c.peakBytes}};
  j["tokens_per_s"] = c.stepSeconds.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.tokensPerSecond());
  if (!c.error.empty()) j["error"] = c.error;
  return j;
}

void printForward(const std::vector<ForwardRow>& rows) {
  fmt::print(
      "\n| N | plain ms | instrumented ms | SDPA reference ms | instrumented / plain | plain / reference | "
      "peak GiB plain | peak GiB instrumented | peak GiB reference "
      "|\n|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    const Cell &p = r.cells[0], &i = r.cells[1], &s = r.cells[2];
    fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.tokens, ms(p), ms(i), ms(s),
               ratio(i.median(), p.median()), ratio(p.median(), s.median()), gib(p.peakBytes),
               gib(i.peakBytes), gib(s.peakBytes));
  }
  for (const auto& r : rows)
    for (int v = 0; v < 3; ++v)
      if (!r.cells[v].error.empty())
        fmt::print("N={} {}: {}\n", r.tokens, variantName(static_cast<Variant>(v)), r.cells[v].error);
}

void printDecode(const std::vector<DecodeRow>& rows, const Options& opt) {
  fmt::print(
      "\n| context | full tokens/s | hybrid tokens/s | hybrid / full speed | full KV GiB | hybrid KV GiB | "
      "full / hybrid KV bytes | peak GiB full | peak GiB hybrid | instrumented tokens/s | full / "
      "instrumented "
      "speed |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    auto tps = [](const DecodeCell& c) {
      return !c.error.empty() ? std::string(c.error.rfind("OOM", 0) == 0 ? "OOM" : "error")
                              : fmt::format("{:.1f}", c.tokensPerSecond());
    };
    const double fullBytes = static_cast<double>(r.full.kvBytes),
                 hybridBytes = static_cast<double>(r.hybrid.kvBytes);
    fmt::print(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.context, tps(r.full), tps(r.hybrid),
        ratio(r.hybrid.tokensPerSecond(), r.full.tokensPerSecond()), gib(r.full.kvBytes, 3),
        gib(r.hybrid.kvBytes, 3),
        r.full.kvBytes > 0 && r.hybrid.kvBytes > 0 ? fmt::format("{:.3f}", fullBytes / hybridBytes) : "-",
        gib(r.full.peakBytes), gib(r.hybrid.peakBytes), tps(r.instrumented),
        ratio(r.full.tokensPerSecond(), r.instrumented.tokensPerSecond()));
  }
  fmt::print(
      "(median of {} greedy steps after 2 warm-up steps; cache filled by {}; hybrid: {:.0f}% of the KV heads "
      "of every layer stream with sink {} and window {}; instrumented: the full cache with every statistic "
      "of each step but pooled maps, copied to the host)\n",
      opt.decodeSteps, opt.decodeFill == "random" ? "random keys/values" : "a prefill of random ids",
      100 * opt.streamingFraction, opt.sink, opt.window);
  for (const auto& r : rows)
    for (const auto* c : {&r.full, &r.hybrid, &r.instrumented})
      if (!c->error.empty())
        fmt::print("decode at {} ({}): {}\n", r.context,
                   c == &r.full     ? "full"
                   : c == &r.hybrid ? "hybrid"
                                    : "full, instrumented",
                   c->error);
}

ModelConfig benchConfig(const Options& opt) {
  int64_t longest = 1;
  for (const int64_t n : opt.tokens) longest = std::max(longest, n);
  for (const int64_t n : opt.decodeContexts) longest = std::max(longest, n + opt.decodeSteps + 8);
  const nlohmann::json config{
      {"model_type", "llama"},
      {"architectures", {"LlamaForCausalLM"}},
      {"hidden_size", opt.hidden},
      {"intermediate_size", opt.mlp},
      {"num_hidden_layers", opt.layers},
      {"num_attention_heads", opt.heads},
      {"num_key_value_heads", opt.kvHeads},
      {"head_dim", opt.headDim > 0 ? opt.headDim : opt.hidden / opt.heads},
      {"vocab_size", opt.vocab},
      {"max_position_embeddings", longest},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", opt.ropeTheta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", false},
  };
  return parseModelConfig(config.dump(), "headscope_bench_gpu model");
}

std::optional<at::ScalarType> parseDtype(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  if (name == "fp16" || name == "float16") return at::kHalf;
  if (name == "fp32" || name == "float32") return at::kFloat;
  throw Error(ErrorKind::InvalidArgument, "unknown dtype '" + name + "' (bf16, fp16, fp32)", {}, "--dtype");
}

int run(Options opt) {
  if (opt.device.empty()) {
#ifdef HEADSCOPE_HAVE_CUDA
    opt.device = at::hasCUDA() ? "cuda:0" : "cpu";
#else
    opt.device = "cpu";
#endif
  }
  Budget budget(opt.budgetSeconds);
  const auto config = benchConfig(opt);
  LoadOptions lo;
  lo.device = opt.device;
  lo.loadTokenizer = false;
  lo.dtype = parseDtype(opt.dtype);
  const auto t0 = Clock::now();
  auto model = Model::randomInit(config, lo, opt.seed);
  synchronize(model->device());
  const int64_t weightBytes = allocatedMemoryBytes(model->device());
  const std::string dtype = c10::toString(model->computeDtype());
  fmt::print(
      "device {} | {} | llama {} layers, {} heads / {} KV heads, head_dim {}, hidden {}, MLP {}, vocab {}, "
      "rope theta {:g}; {:.4g} M parameters of random weights made in {:.1f} s ({} GiB allocated)\n",
      deviceName(model->device()), dtype, config.numLayers, config.numHeads, config.numKvHeads,
      config.headDim, config.hiddenSize, config.intermediateSize, config.vocabSize, config.rope.theta,
      static_cast<double>(model->parameterCount()) * 1e-6, secondsSince(t0), gib(weightBytes));

  nlohmann::json out{{"device", deviceName(model->device())},
                     {"dtype", dtype},
                     {"model",
                      {{"layers", config.numLayers},
                       {"heads", config.numHeads},
                       {"kv_heads", config.numKvHeads},
                       {"head_dim", config.headDim},
                       {"hidden", config.hiddenSize},
                       {"mlp", config.intermediateSize},
                       {"vocab", config.vocabSize},
                       {"rope_theta", config.rope.theta},
                       {"parameters", model->parameterCount()},
                       {"weight_bytes", weightBytes}}},
                     {"timed_runs", opt.timedRuns},
                     {"warmup_runs", opt.warmup},
                     {"budget_s", opt.budgetSeconds}};
  std::mt19937 rng(static_cast<uint32_t>(opt.seed));
  std::vector<DecodeRow> decodeRows;
  std::vector<ForwardRow> forwardRows;
  // Decode first: it is cheap, and the forward table's budget must not starve it.
  if (!opt.skipDecode) decodeRows = benchDecode(*model, opt, rng, out);
  if (!opt.skipForward) {
    ForwardBench forward(*model, opt, budget);
    const auto checkTokens = std::min<int64_t>(*std::min_element(opt.tokens.begin(), opt.tokens.end()), 1024);
    std::string failed = guarded([&] { out["agreement"] = forward.agreement(checkTokens, rng); });
    if (!failed.empty()) fmt::print("agreement check: {}\n", failed);
    forwardRows = forward.run(rng);
  }

  fmt::print("\n## headscope_bench_gpu on {} ({}), {:.0f} s\n", deviceName(model->device()), dtype,
             budget.elapsed());
  if (!opt.skipForward) {
    fmt::print(
        "\nForward of N random tokens from an empty cache (last-token logits); median of up to {} timed runs "
        "after {} warm-up run(s); peak = the allocator's peak during the run, weights ({} GiB) included.\n",
        opt.timedRuns, opt.warmup, gib(weightBytes));
    printForward(forwardRows);
  }
  if (!opt.skipDecode) printDecode(decodeRows, opt);

  for (const auto& r : forwardRows)
    out["forward"].push_back({{"tokens", r.tokens},
                              {"plain", cellJson(r.cells[0])},
                              {"instrumented", cellJson(r.cells[1])},
                              {"sdpa_reference", cellJson(r.cells[2])}});
  for (const auto& r : decodeRows)
    out["decode"].push_back({{"context", r.context},
                             {"full", decodeJson(r.full)},
                             {"hybrid", decodeJson(r.hybrid)},
                             {"instrumented", decodeJson(r.instrumented)},
                             {"fill", opt.decodeFill},
                             {"steps", opt.decodeSteps},
                             {"sink", opt.sink},
                             {"window", opt.window},
                             {"streaming_fraction", opt.streamingFraction}});
  if (!opt.json.empty()) {
    std::ofstream(opt.json) << out.dump(2) << "\n";
    check(std::ifstream(opt.json).good(), ErrorKind::Io, "could not write the JSON results", opt.json);
    fmt::print("\nwrote {}\n", opt.json);
  }
  return 0;
}

}  // namespace
}  // namespace hs::bench

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines reach a log (tee) as they are printed
  hs::bench::Options opt;
  CLI::App app{
      "HeadScope GPU benchmark: plain / instrumented / SDPA-reference forward and full vs hybrid decode "
      "on a Llama-3-8B-shaped model with random weights"};
  app.add_option("--device", opt.device, "cuda[:N] or cpu (default: cuda when available)");
  app.add_option("--dtype", opt.dtype, "bf16, fp16 or fp32 (default: bf16 on cuda, fp32 on cpu)");
  app.add_option("--tokens", opt.tokens, "prompt lengths of the forward table")->delimiter(',');
  app.add_option("--timed-runs", opt.timedRuns, "timed runs per forward measurement (median)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed runs per variant before the timed ones, at each N")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--layers", opt.layers)->check(CLI::PositiveNumber);
  app.add_option("--hidden", opt.hidden)->check(CLI::PositiveNumber);
  app.add_option("--heads", opt.heads)->check(CLI::PositiveNumber);
  app.add_option("--kv-heads", opt.kvHeads)->check(CLI::PositiveNumber);
  app.add_option("--head-dim", opt.headDim, "default hidden / heads")->check(CLI::NonNegativeNumber);
  app.add_option("--mlp", opt.mlp)->check(CLI::PositiveNumber);
  app.add_option("--vocab", opt.vocab)->check(CLI::PositiveNumber);
  app.add_option("--rope-theta", opt.ropeTheta)->check(CLI::PositiveNumber);
  app.add_option("--decode-contexts", opt.decodeContexts, "context lengths of the decode table")
      ->delimiter(',');
  app.add_option("--decode-steps", opt.decodeSteps, "timed greedy steps per decode measurement")
      ->check(CLI::PositiveNumber);
  app.add_option("--decode-fill", opt.decodeFill, "random (keys/values) or prefill (random ids)")
      ->check(CLI::IsMember({"random", "prefill"}));
  app.add_option("--sink", opt.sink, "streaming heads keep positions < sink")->check(CLI::NonNegativeNumber);
  app.add_option("--window", opt.window, "... and the last window positions")->check(CLI::PositiveNumber);
  app.add_option("--streaming-fraction", opt.streamingFraction,
                 "fraction of the KV heads of each layer that stream")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--time-budget-s", opt.budgetSeconds,
                 "skip forward runs predicted to end after this many seconds")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", opt.json, "also write the results as JSON to this file");
  app.add_option("--seed", opt.seed, "weights and token ids");
  app.add_flag("--skip-forward", opt.skipForward, "decode table only");
  app.add_flag("--skip-decode", opt.skipDecode, "forward table only");
  CLI11_PARSE(app, argc, argv);
  try {
    hs::check(!opt.tokens.empty() || opt.skipForward, hs::ErrorKind::InvalidArgument,
              "no prompt lengths given", {}, "--tokens");
    for (const int64_t n : opt.tokens)
      hs::check(n > 0, hs::ErrorKind::InvalidArgument, "token counts must be positive", {}, "--tokens");
    for (const int64_t n : opt.decodeContexts)
      hs::check(n > 0, hs::ErrorKind::InvalidArgument, "contexts must be positive", {}, "--decode-contexts");
    return hs::bench::run(opt);
  } catch (const hs::Error& e) {
    std::fprintf(stderr, "error (%s): %s\n", hs::errorKindName(e.kind()), e.what());
    return hs::exitCodeFor(e.kind());
  }
}
