// Benchmark (never a test): one Llama-3-8B-shaped attention layer (32 heads, 8 KV heads, head_dim 128,
// bf16) at growing N: our plain forward, our instrumented forward (every statistic for every head,
// pooled maps of at most 256x256 cells) and at::scaled_dot_product_attention, with peak memory.
//   usage: hs_attention_cuda_bench [max_tokens=32768] [min_tokens=4096]
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "kernels/attention/attention.h"
#include "kernels/core/torch_compat.h"
#include "kernels/cuda/attention_cuda_bridge.h"

namespace {

// Simple timing: one warm-up, then the mean of `reps` runs, in milliseconds.
double timeMs(const std::function<void()>& f, int reps) {
  f();
  c10::cuda::device_synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  c10::cuda::device_synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
}

double peakGiB(const std::function<void()>& f) {
  c10::cuda::device_synchronize();
  c10::cuda::CUDACachingAllocator::resetPeakStats(0);
  f();
  c10::cuda::device_synchronize();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30);  // [0]: StatType AGGREGATE
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t maxTokens = argc > 1 ? std::atoll(argv[1]) : 32768;
  const int64_t minTokens = argc > 2 ? std::atoll(argv[2]) : 4096;
  const int64_t H = 32, KVH = 8, D = 128;
  namespace kc = hs::kernels::cuda;
  const auto opt = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  std::printf("one layer, %lld heads / %lld KV heads, head_dim %lld, bf16, causal. ms per call (mean).\n"
              "plain = attentionCuda without statistics (LibTorch's fused kernel); tc = our tensor-core forward;\n"
              "instr = every statistic, pooled maps included: LibTorch's fused forward (its row log-sum-exp) + our one-pass\n"
              "tensor-core statistics + key masses; instr-tc = the same on our tensor-core forward\n",
              static_cast<long long>(H), static_cast<long long>(KVH), static_cast<long long>(D));
  std::printf("fwd+lse = LibTorch's fused forward with its log-sum-exp alone (the start of instr); instr-wgmma =\n"
              "instr with the statistics pass on Hopper's wgmma (KernelPath::AutoWgmma)\n");
  std::printf(
      "| N | sdpa ms | plain ms | fwd+lse ms | tc ms | instr ms | instr-wgmma ms | instr-tc ms | instr/plain |"
      " tc/sdpa | instr GiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t n = minTokens; n <= maxTokens; n *= 2) {
    const auto q = at::randn({H, n, D}, opt), k = at::randn({KVH, n, D}, opt),
               v = at::randn({KVH, n, D}, opt);
    hs::kernels::AttentionCall call;
    call.q = q, call.k = k, call.v = v, call.scale = 1.0 / std::sqrt(static_cast<double>(D));
    hs::kernels::StatsRequest req;
    req.sinkSet = {0, 1, 2, 3};
    req.poolBlock = std::max<int64_t>(64, n / 256);  // pooled maps of at most 256 x 256 cells (n a power of 2)
    auto plain = [&] { hs::kernels::attentionCuda(call, nullptr); };
    auto tc = [&] {
      const kc::ScopedKernelPath path(kc::KernelPath::TensorCores);
      hs::kernels::attentionCuda(call, nullptr);
    };
    auto instrumented = [&] {
      hs::kernels::AttentionCall c = call;
      c.stats = &req;
      hs::kernels::LayerStats s;
      hs::kernels::attentionCuda(c, &s);
    };
    auto instrumentedWgmma = [&] {
      const kc::ScopedKernelPath path(kc::KernelPath::AutoWgmma);
      instrumented();
    };
    auto instrumentedTc = [&] {
      const kc::ScopedKernelPath path(kc::KernelPath::TensorCores);
      instrumented();
    };
    const int reps = n <= 8192 ? 5 : 2;
    const double tPlain = timeMs(plain, reps), tTc = timeMs(tc, reps), tInstr = timeMs(instrumented, reps);
    const double tInstrTc = timeMs(instrumentedTc, reps), tInstrWgmma = timeMs(instrumentedWgmma, reps);
    const double mInstr = peakGiB(instrumented);
    // The forward the instrumented call starts with: LibTorch's fused kernel returning its log-sum-exp.
    const double tLse = timeMs([&] { hs::compat::causalAttentionGqaWithLse(q, k, v, call.scale); }, reps);
    double tSdpa = 0.0;
#if HS_TORCH_AT_LEAST(2, 1)
    const auto qb = q.unsqueeze(0), kb = k.repeat_interleave(H / KVH, 0).unsqueeze(0);
    const auto vb = v.repeat_interleave(H / KVH, 0).unsqueeze(0);
    tSdpa = timeMs([&] { at::scaled_dot_product_attention(qb, kb, vb, {}, 0.0, true); }, reps);
#endif
    std::printf("| %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                static_cast<long long>(n), tSdpa, tPlain, tLse, tTc, tInstr, tInstrWgmma, tInstrTc, tInstr / tPlain,
                tSdpa > 0 ? tTc / tSdpa : 0.0, mInstr);
    std::fflush(stdout);
  }

  // One decode step (one query per head) over a long cache: our split-KV kernel vs LibTorch's fused
  // attention on the same tensors; GB/s counts the K and V bytes read once.
  std::printf("\n| context | split-KV decode us | sdpa decode us | split GB/s | sdpa GB/s |\n|---|---|---|---|---|\n");
  for (const int64_t n : {int64_t{32768}, int64_t{131072}}) {
    const auto q = at::randn({H, 1, D}, opt), k = at::randn({KVH, n, D}, opt), v = at::randn({KVH, n, D}, opt);
    hs::kernels::AttentionCall call;
    call.q = q, call.k = k, call.v = v, call.queryStart = n - 1, call.scale = 1.0 / std::sqrt(static_cast<double>(D));
    const double tSplit = timeMs([&] { hs::kernels::attentionCuda(call, nullptr); }, 20);
    double tSdpa = 0.0;
#if HS_TORCH_AT_LEAST(2, 1)
    const auto q4 = q.reshape({1, KVH, H / KVH, D}), k4 = k.unsqueeze(0), v4 = v.unsqueeze(0);
    tSdpa = timeMs([&] { at::scaled_dot_product_attention(q4, k4, v4, {}, 0.0, false); }, 20);
#endif
    const double bytes = 2.0 * static_cast<double>(KVH * n * D) * 2.0;
    std::printf("| %lld | %.1f | %.1f | %.0f | %.0f |\n", static_cast<long long>(n), tSplit * 1e3, tSdpa * 1e3,
                bytes / (tSplit * 1e-3) / 1e9, tSdpa > 0 ? bytes / (tSdpa * 1e-3) / 1e9 : 0.0);
  }
  return 0;
}
