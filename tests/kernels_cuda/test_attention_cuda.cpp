// attentionCuda (kernels/cuda/) against the CPU reference attentionCpu on the same dtype-rounded inputs:
// outputs, every statistic, pooled maps and tiles, over awkward sizes, GQA ratios, head dims, masks and
// interventions, with the CUDA outputs poisoned first. Plus the error table and CUDA error conversion.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/core/error.h"
#include "kernels/cuda/attention_cuda_bridge.h"
#include "kernels/cuda/attention_kernels.h"
#include "tests/catch.hpp"
#include "tests/kernels_cuda/attention_cases.h"

using hs::ErrorKind;
using hs::kernels::AttentionCall;
using hs::kernels::LayerStats;
using hs::test::AttentionCase;
using hs::test::EditSet;
using hs::test::expectClose;

namespace {

// Full reference probabilities [H, nq, nk] (from the CPU observer) for the top-1 check.
at::Tensor referenceProbabilities(AttentionCall call) {
  std::vector<at::Tensor> blocks;
  call.observer = [&](int64_t, const at::Tensor& p) { blocks.push_back(p.clone()); };
  LayerStats unused;
  hs::kernels::attentionCpu(call, &unused);
  return at::cat(blocks, 1);
}

namespace kc = hs::kernels::cuda;

// Output and every statistic of one CUDA call against the CPU reference's.
void checkStatistics(const AttentionCase& c, const AttentionCall& cpuCall, const at::Tensor& wantOut,
                     const LayerStats& want, const at::Tensor& gotOut, const LayerStats& got) {
  REQUIRE(gotOut.scalar_type() == c.dtype);
  const bool lowPrecision = c.dtype != at::kFloat;
  expectClose(gotOut.to(at::kFloat), wantOut, lowPrecision ? 1e-2 : 1e-4, lowPrecision ? 1e-2 : 1e-4,
              "output");

  // Statistics are computed in fp32 from the same rounded inputs: 2e-3 absolute (the bf16 target's
  // bound), plus a small relative part for sums that grow with N (column sums, distances).
  const double atol = 2e-3, rtol = 1e-3;
  expectClose(got.sinkFirst, want.sinkFirst, atol, rtol, "sinkFirst");
  expectClose(got.sinkSet, want.sinkSet, atol, rtol, "sinkSet");
  expectClose(got.entropy, want.entropy, atol, rtol, "entropy");
  expectClose(got.streamMass, want.streamMass, atol, rtol, "streamMass");
  expectClose(got.waad, want.waad, atol, rtol, "waad");
  expectClose(got.meanDistance, want.meanDistance, atol, rtol, "meanDistance");
  expectClose(got.top1Prob, want.top1Prob, atol, rtol, "top1Prob");
  expectClose(got.colSum, want.colSum, atol, rtol, "colSum");
  expectClose(got.colSumBand, want.colSumBand, atol, rtol, "colSumBand");
  expectClose(got.targetMass, want.targetMass, atol, rtol, "targetMass");
  REQUIRE(got.poolMax.defined() == want.poolMax.defined());
  if (want.poolMax.defined()) {
    expectClose(got.poolMax, want.poolMax, atol, rtol, "poolMax");
    expectClose(got.poolMean, want.poolMean, atol, rtol, "poolMean");
  }
  REQUIRE(got.tiles.size() == want.tiles.size());
  for (size_t i = 0; i < got.tiles.size(); ++i)
    expectClose(got.tiles[i], want.tiles[i], atol, rtol, "tile " + std::to_string(i));

  // Top-1 position: ties make the index ambiguous, so check that the reference probability at the
  // kernel's position is the row maximum (within tolerance).
  REQUIRE(got.top1Pos.sizes() == want.top1Pos.sizes());
  if (c.nq > 0) {
    const auto probs = referenceProbabilities(cpuCall);
    const auto pos = got.top1Pos;
    INFO("top1Pos range [" << pos.min().item<int64_t>() << ", " << pos.max().item<int64_t>() << "]");
    REQUIRE(pos.min().item<int64_t>() >= 0);
    REQUIRE(pos.max().item<int64_t>() < c.nk);
    const auto atPos = probs.gather(2, pos.unsqueeze(2)).squeeze(2);
    expectClose(atPos, want.top1Prob, atol, 0.0, "reference probability at top1Pos");
  }
}

void compareCase(const AttentionCase& c, uint64_t seed) {
  INFO("case " << c.name);
  const auto pr = hs::test::makeProblem(c, seed);
  const bool edits = c.edits != EditSet::None;
  const AttentionCall cpuCall = hs::test::makeCall(*pr, c, false, edits);
  LayerStats want;
  const at::Tensor wantOut = hs::kernels::attentionCpu(cpuCall, &want);
  // With statistics: Auto takes LibTorch's fused forward and our statistics pass for a plain bf16/fp16
  // prefill, so the tensor-core forward + statistics pass is pinned as well there, and the Hopper
  // (wgmma) statistics pass wherever the tensor-core one runs.
  std::vector<kc::KernelPath> statsPaths{kc::KernelPath::Auto};
  if (c.poolBlock % 64 == 0 && c.dtype != at::kFloat) statsPaths.push_back(kc::KernelPath::AutoWgmma);
  if (!edits && c.poolBlock % 64 == 0 && c.dtype != at::kFloat) statsPaths.push_back(kc::KernelPath::TensorCores);
  for (const auto path : statsPaths) {
    INFO("statistics on path " << static_cast<int>(path));
    const kc::ScopedKernelPath pin(path);
    LayerStats got;
    at::Tensor gotOut;
    {
      const kc::ScopedOutputPoisoning poison;
      gotOut = hs::kernels::attentionCuda(hs::test::makeCall(*pr, c, true, edits), &got);
    }
    checkStatistics(c, cpuCall, wantOut, want, gotOut, got);
  }

  // The output alone (no statistics) on every kernel path: LibTorch's fused kernel where it applies
  // (Auto, no edits), the tensor-core kernels, the CUDA-core kernels.
  const bool lowPrecision = c.dtype != at::kFloat;
  for (const auto path : {kc::KernelPath::Auto, kc::KernelPath::TensorCores, kc::KernelPath::CudaCores}) {
    const kc::ScopedKernelPath pin(path);
    const kc::ScopedOutputPoisoning poison;
    AttentionCall plainCall = hs::test::makeCall(*pr, c, true, edits);
    plainCall.stats = nullptr;
    const at::Tensor plainOut = hs::kernels::attentionCuda(plainCall, nullptr);
    REQUIRE(plainOut.scalar_type() == c.dtype);
    expectClose(plainOut.to(at::kFloat), wantOut, lowPrecision ? 1e-2 : 1e-4, lowPrecision ? 1e-2 : 1e-4,
                "output without statistics, path " + std::to_string(static_cast<int>(path)));
  }
}

// The sweep: N around the tile (1, 63, 64, 65, 130, 300), GQA 1/4/8, head_dim 64/128 and padded ones
// (36 takes the scalar-load path, 96 the 128 kernel), decode-like query blocks, sliding windows,
// strided views, every edit set and pool blocks below/above the tile.
std::vector<AttentionCase> sweep() {
  using S = at::ScalarType;
  std::vector<AttentionCase> cases = {
      {"N=1 d64 bf16", 4, 4, 1, 1, 64, S::BFloat16},
      {"N=63 d128 gqa4", 8, 2, 63, 63, 128, S::BFloat16},
      {"N=64 d64 gqa8", 8, 1, 64, 64, 64, S::BFloat16},
      {"N=65 d128 gqa8 fp16", 8, 1, 65, 65, 128, S::Half},
      {"N=130 d36 fp32", 4, 2, 130, 130, 36, S::Float},
      {"N=300 d96 gqa4", 8, 2, 300, 300, 96, S::BFloat16},
      {"decode 1 of 200 d128", 8, 2, 1, 200, 128, S::BFloat16},
      {"chunk 17 of 150 d64 fp16", 4, 1, 17, 150, 64, S::Half},
      {"sliding 32 N=200 d128", 4, 4, 200, 200, 128, S::BFloat16, -1, 32},
      {"strided N=90 d64", 8, 2, 90, 90, 64, S::BFloat16, -1, 0, EditSet::None, 16, true},
  };
  std::vector<AttentionCase> out;
  const EditSet sets[] = {EditSet::None, EditSet::Masks, EditSet::BiasScale, EditSet::Attenuation,
                          EditSet::Everything};
  const char* setNames[] = {"", " masks", " bias+scale", " act", " everything"};
  const int64_t pools[] = {16, 64, 3, 5, 128};  // 64 and 128 on tensor cores, the others on CUDA cores
  for (size_t i = 0; i < cases.size(); ++i)
    for (int e = 0; e < 5; ++e) {
      AttentionCase c = cases[i];
      c.edits = sets[e];
      c.name += setNames[e];
      c.poolBlock = pools[(i + e) % 5];
      // A sliding window can hide every key of a streaming mix's row: the CPU reference gives NaN there.
      if (c.slidingWindow > 0 && c.edits == EditSet::Everything) c.edits = EditSet::Attenuation;
      out.push_back(c);
      // Without pooled maps (or with blocks of 64/128), bf16/fp16 at head_dim 64/128 take the tensor-core
      // kernels, statistics too.
      c.poolBlock = 0;
      c.name += " nopool";
      out.push_back(c);
    }
  return out;
}

}  // namespace

TEST_CASE("attentionCuda matches the CPU reference over the sweep", "[kernels_cuda]") {
  REQUIRE(at::hasCUDA());
  const auto cases = sweep();
  for (size_t i = 0; i < cases.size(); ++i) compareCase(cases[i], 1000 + i);
}

// A few tensor-core cases, small enough for compute-sanitizer (racecheck / memcheck runs use [small]).
TEST_CASE("tensor-core kernels on a few awkward shapes", "[kernels_cuda][small][tc]") {
  REQUIRE(at::hasCUDA());
  using S = at::ScalarType;
  const std::vector<AttentionCase> cases = {
      {"tc N=65 d128 gqa8 fp16 masks", 8, 1, 65, 65, 128, S::Half, -1, 0, EditSet::Masks, 0},
      {"tc N=130 d64 bias+scale", 4, 2, 130, 130, 64, S::BFloat16, -1, 0, EditSet::BiasScale, 0},
      {"tc decode 1 of 200 d128", 8, 2, 1, 200, 128, S::BFloat16, -1, 0, EditSet::None, 0},
      {"tc chunk 17 of 150 sliding 32", 4, 1, 17, 150, 64, S::Half, -1, 32, EditSet::None, 0},
      {"tc N=300 d128 gqa4 (statistics pass: several key tiles)", 8, 2, 300, 300, 128, S::BFloat16, -1, 0,
       EditSet::None, 0},
  };
  for (size_t i = 0; i < cases.size(); ++i) compareCase(cases[i], 50 + i);
}

// The split-KV decode kernels (the Auto path of a one-token step, with statistics too): many chunks, GQA
// 4/8/16, d 64/128/96, pool blocks that do and do not divide the chunks, a sliding window that the
// cache fits in (split-KV) and one it does not (the prefill kernels).
TEST_CASE("split-KV decode on a few long caches", "[kernels_cuda][small][decode]") {
  REQUIRE(at::hasCUDA());
  using S = at::ScalarType;
  const std::vector<AttentionCase> cases = {
      {"decode 1 of 5000 gqa4 d128", 8, 2, 1, 5000, 128, S::BFloat16, -1, 0, EditSet::None, 0},
      {"decode 1 of 5000 gqa4 d128 pool 100", 8, 2, 1, 5000, 128, S::BFloat16, -1, 0, EditSet::None, 100},
      {"decode 1 of 3001 gqa8 d64 fp16 pool 64", 8, 1, 1, 3001, 64, S::Half, -1, 0, EditSet::None, 64},
      {"decode 1 of 777 gqa16 d96 fp32 pool 5", 16, 1, 1, 777, 96, S::Float, -1, 0, EditSet::None, 5},
      {"decode 1 of 2000 window 2000 pool 7", 4, 4, 1, 2000, 64, S::BFloat16, -1, 2000, EditSet::None, 7},
      {"decode 1 of 2000 window 300", 4, 4, 1, 2000, 64, S::BFloat16, -1, 300, EditSet::None, 16},
      {"decode 1 of 3000 bias+scale (prefill kernels)", 8, 2, 1, 3000, 128, S::BFloat16, -1, 0,
       EditSet::BiasScale, 0},
  };
  for (size_t i = 0; i < cases.size(); ++i) compareCase(cases[i], 60 + i);
}

TEST_CASE("attentionCuda statistics match the CPU reference at 4k tokens (bf16)", "[kernels_cuda][long]") {
  REQUIRE(at::hasCUDA());
  AttentionCase c{"4k bf16 gqa4 d128", 4, 1, 4096, 4096, 128, at::kBFloat16};
  c.poolBlock = 64;
  compareCase(c, 7);
  c.name += " tensor cores (no pooled maps)";
  c.poolBlock = 0;
  compareCase(c, 9);
  c.name += " masks+bias";
  c.edits = EditSet::Masks;
  compareCase(c, 10);
  c.poolBlock = 64;
  c.name += " act+masks";
  c.edits = EditSet::Everything;
  compareCase(c, 8);
}

TEST_CASE("attentionCuda rejects bad calls with the field named, and stays usable", "[kernels_cuda]") {
  REQUIRE(at::hasCUDA());
  AttentionCase base{"small", 4, 2, 20, 20, 64, at::kBFloat16};
  base.edits = EditSet::Everything;
  struct Row {
    std::string name;
    std::function<void(AttentionCall&, hs::test::AttentionProblem&)> breakIt;
    ErrorKind kind;
    std::string fragment;
  };
  const std::vector<Row> rows = {
      {"q on the CPU", [](auto& c, auto&) { c.q = c.q.cpu(); }, ErrorKind::InvalidArgument,
       "q: expected a CUDA tensor"},
      {"k dtype differs", [](auto& c, auto&) { c.k = c.k.to(at::kHalf); }, ErrorKind::Mismatch,
       "k: expected dtype"},
      {"int q", [](auto& c, auto&) { c.q = c.q.to(at::kInt); }, ErrorKind::Unsupported,
       "q: expected float32"},
      {"head_dim 160",
       [](auto& c, auto&) {
         c.q = at::zeros({4, 20, 160}, c.q.options()), c.k = c.v = at::zeros({2, 20, 160}, c.k.options());
       },
       ErrorKind::Unsupported, "head_dim 160"},
      {"heads not a multiple",
       [](auto& c, auto&) {
         c.k = c.v = at::zeros({3, 20, 64}, c.k.options());
       },
       ErrorKind::InvalidArgument, "multiple of KV heads"},
      {"queries past the keys", [](auto& c, auto&) { c.queryStart = 5; }, ErrorKind::InvalidArgument,
       "queryStart: queries at positions 5..24"},
      {"observer", [](auto& c, auto&) { c.observer = [](int64_t, const at::Tensor&) {}; },
       ErrorKind::Unsupported, "observer"},
      {"two attenuations on a head",
       [](auto&, auto& p) {
         p.edits.attenuations.push_back({0, {1}, 0.5});
       },
       ErrorKind::Unsupported, "edits.attenuations[2]"},
      {"block mask too small",
       [](auto&, auto& p) {
         p.edits.masks.push_back({1, hs::kernels::HeadMask::blockSparse(8, at::ones({1, 1}))});
       },
       ErrorKind::InvalidArgument, "block mask is smaller than the sequence"},
      {"mask head out of range",
       [](auto&, auto& p) {
         p.edits.masks.push_back({9, hs::kernels::HeadMask::sinkWindow(1, 1)});
       },
       ErrorKind::InvalidArgument, "edits.masks[4]: head 9 out of range"},
      {"negative beta", [](auto&, auto& p) { p.edits.attenuations[1].beta = -1; }, ErrorKind::InvalidArgument,
       "expected beta >= 0"},
      {"alpha requiring grad",
       [](auto&, auto& p) {
         p.edits.mixes[0].alpha = at::scalar_tensor(0.5).requires_grad_();
       },
       ErrorKind::Unsupported, "edits.mixes[0]: alpha requires grad"},
      {"headScale size", [](auto&, auto& p) { p.edits.headScale = at::ones({3}); },
       ErrorKind::InvalidArgument, "edits.headScale: expected 4 values, found 3"},
      {"huge tile",
       [](auto&, auto& p) {
         p.stats.tiles.push_back({0, 0, 1 << 20, 0, 1 << 20});
       },
       ErrorKind::OutOfMemory, "stats.tiles[2]"},
      {"target rows", [](auto&, auto& p) { p.stats.targets[0].rowStart.pop_back(); },
       ErrorKind::InvalidArgument, "stats.targets[0] 'previous token'"},
      {"pool head", [](auto&, auto& p) { p.stats.poolHeads = {4}; }, ErrorKind::InvalidArgument,
       "stats.poolHeads: head 4 out of range"},
  };
  for (const auto& row : rows) {
    INFO("row: " << row.name);
    auto pr = hs::test::makeProblem(base, 3);
    AttentionCall call = hs::test::makeCall(*pr, base, true, true);
    row.breakIt(call, *pr);
    LayerStats stats;
    bool threw = false;
    try {
      hs::kernels::attentionCuda(call, &stats);
    } catch (const hs::Error& e) {
      threw = true;
      INFO("what(): " << e.what());
      CHECK(e.kind() == row.kind);
      CHECK(std::string(e.what()).find(row.fragment) != std::string::npos);
    }
    CHECK(threw);
  }
  SECTION("statistics without an output") {
    auto pr = hs::test::makeProblem(base, 3);
    try {
      hs::kernels::attentionCuda(hs::test::makeCall(*pr, base, true, true), nullptr);
      FAIL("no error");
    } catch (const hs::Error& e) {
      CHECK(e.kind() == ErrorKind::InvalidArgument);
      CHECK(std::string(e.what()).find("statsOut") != std::string::npos);
    }
  }
  compareCase(base, 4);  // the process and the device are still fine after the errors
}

TEST_CASE("a failed CUDA launch becomes hs::Error(Device) naming the kernel", "[kernels_cuda]") {
  REQUIRE(at::hasCUDA());
  namespace kc = hs::kernels::cuda;
  kc::AttentionParams p;
  p.type = kc::ElemType::BF16, p.heads = 70000, p.kvHeads = 1, p.dim = 64, p.nq = 1, p.nk = 1;
  p.numHeads = 70000;  // grid.y above 65535: the launch itself is refused, nothing is read
  try {
    kc::launchAttentionForward(p, nullptr);
    FAIL("no error");
  } catch (const hs::Error& e) {
    INFO(e.what());
    CHECK(e.kind() == ErrorKind::Device);
    CHECK(std::string(e.what()).find("attention_forward") != std::string::npos);
  }
  compareCase({"after a launch error", 4, 2, 70, 70, 64, at::kBFloat16}, 5);
}

TEST_CASE("hybrid decode on CUDA matches the CPU reference", "[kernels_cuda][small][decode]") {
  REQUIRE(at::hasCUDA());
  struct Case {
    const char* name;
    int64_t heads, fullEntries, streamEntries, dim;
    std::vector<bool> streaming;
    at::ScalarType dtype;
  };
  const std::vector<Case> cases = {
      {"8 KV heads, half streaming, bf16 d128", 32, 5000, 320, 128, {0, 1, 0, 1, 0, 1, 0, 1}, at::kBFloat16},
      {"streaming store longer than the full one, fp16 d64", 16, 100, 320, 64, {1, 0, 0, 1}, at::kHalf},
      {"every head streaming, fp32 d96", 8, 0, 77, 96, {1, 1}, at::kFloat},
      {"no head streaming, gqa 16, bf16 d128", 32, 3001, 0, 128, {0, 0}, at::kBFloat16},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    at::manual_seed(17);
    const int64_t kvHeads = static_cast<int64_t>(c.streaming.size());
    const int64_t streamHeads = std::count(c.streaming.begin(), c.streaming.end(), true);
    const auto opt = at::TensorOptions().dtype(c.dtype);
    hs::kernels::HybridDecodeCall cpu;
    cpu.q = at::randn({c.heads, 1, c.dim}, opt);
    if (kvHeads > streamHeads) {
      cpu.fullK = at::randn({kvHeads - streamHeads, c.fullEntries, c.dim}, opt);
      cpu.fullV = at::randn({kvHeads - streamHeads, c.fullEntries, c.dim}, opt);
    }
    if (streamHeads > 0) {
      cpu.streamK = at::randn({streamHeads, c.streamEntries, c.dim}, opt);
      cpu.streamV = at::randn({streamHeads, c.streamEntries, c.dim}, opt);
    }
    cpu.streamKvHead = c.streaming;
    cpu.scale = 1.0 / std::sqrt(static_cast<double>(c.dim));
    const at::Tensor want = hs::kernels::hybridDecodeAttention(cpu);
    hs::kernels::HybridDecodeCall gpu = cpu;
    for (at::Tensor* t : {&gpu.q, &gpu.fullK, &gpu.fullV, &gpu.streamK, &gpu.streamV})
      if (t->defined()) *t = t->cuda();
    at::Tensor got;
    {
      const kc::ScopedOutputPoisoning poison;
      got = hs::kernels::hybridDecodeAttention(gpu);
    }
    REQUIRE(got.is_cuda());
    REQUIRE(got.scalar_type() == c.dtype);
    const double tol = c.dtype == at::kFloat ? 1e-5 : 1e-2;
    expectClose(got.cpu().to(at::kFloat), want.to(at::kFloat), tol, tol, "hybrid decode output");
  }
}
