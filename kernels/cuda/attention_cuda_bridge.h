// LibTorch side of the CUDA attention (compiled only with HEADSCOPE_HAVE_CUDA): attentionCuda itself is
// declared in kernels/attention/attention.h; this header adds what tests need beyond the contract.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/attention/attention.h"

namespace hs::kernels::cuda {

// While alive (on this thread), every buffer that the kernels must overwrite completely (output,
// row statistics, key masses, tiles) is first filled with NaN (positions with -1), so that a test
// comparing against the CPU reference sees any element a kernel forgot to write.
class ScopedOutputPoisoning {
 public:
  ScopedOutputPoisoning();
  ~ScopedOutputPoisoning();
  ScopedOutputPoisoning(const ScopedOutputPoisoning&) = delete;
  ScopedOutputPoisoning& operator=(const ScopedOutputPoisoning&) = delete;

 private:
  bool previous_;
};

// Which kernels attentionCuda runs. Auto: LibTorch's fused attention for calls without edits or
// statistics (when its causal convention fits), the tensor-core kernels where eligible (bf16/fp16,
// head_dim 64/128, no ACT, pooled maps only with blocks that are multiples of 64), the CUDA-core
// kernels otherwise. AutoWgmma: as Auto with the statistics pass on Hopper's wgmma
// (attention_wgmma.cu) where the GPU and the build have it; correct, but not yet faster than the
// mma.sync pass (docs/performance.md, session 4). TensorCores: never the fused LibTorch path.
// CudaCores: only the CUDA-core kernels. Tests and benchmarks pin a path with it.
enum class KernelPath { Auto, AutoWgmma, TensorCores, CudaCores };

// While alive (on this thread), attentionCuda uses `path`.
class ScopedKernelPath {
 public:
  explicit ScopedKernelPath(KernelPath path);
  ~ScopedKernelPath();
  ScopedKernelPath(const ScopedKernelPath&) = delete;
  ScopedKernelPath& operator=(const ScopedKernelPath&) = delete;

 private:
  KernelPath previous_;
};

// Checks an AttentionCall against what the CUDA kernels support (devices, dtypes, head_dim <= 128,
// at most one SinkWindow/Blocks mask, attenuation and mix per head); throws hs::Error naming the field.
void validateCudaCall(const AttentionCall& call);

}  // namespace hs::kernels::cuda
