#include "inference/memory_plan.h"

#include <c10/core/ScalarType.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#ifdef HEADSCOPE_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace hs {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

int64_t envMegabytes(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::max<int64_t>(0, std::atoll(value)) * (int64_t{1} << 20) : 0;
}

// MemAvailable of /proc/meminfo, capped by HEADSCOPE_HOST_MEMORY_MB; 0 when unknown.
int64_t availableHostBytes() {
  int64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") avail = kb * 1024;
  if (const int64_t cap = envMegabytes("HEADSCOPE_HOST_MEMORY_MB"); cap > 0)
    avail = avail > 0 ? std::min(avail, cap) : cap;
  return avail;
}

#ifdef HEADSCOPE_HAVE_CUDA
// The driver's free bytes plus the blocks LibTorch's caching allocator reserved but does not use
// (they are free for our tensors, not for other processes). HEADSCOPE_DEVICE_MEMORY_MB caps it as
// if the device had that much memory in all.
int64_t availableCudaBytes(at::Device device) {
  const c10::DeviceIndex index = device.has_index() ? device.index() : c10::cuda::current_device();
  c10::cuda::CUDAGuard guard(index);
  size_t freeBytes = 0, totalBytes = 0;
  if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error state; the caller treats 0 as unknown
    return 0;
  }
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  const int64_t allocated = stats.allocated_bytes[0].current;  // [0]: all pools together
  const int64_t cachedUnused = std::max<int64_t>(0, stats.reserved_bytes[0].current - allocated);
  int64_t avail = static_cast<int64_t>(freeBytes) + cachedUnused;
  if (const int64_t cap = envMegabytes("HEADSCOPE_DEVICE_MEMORY_MB"); cap > 0)
    avail = std::min(avail, std::max<int64_t>(0, cap - allocated));
  return avail;
}
#endif

}  // namespace

ForwardMemoryEstimate estimateForwardMemory(const ModelConfig& c, at::ScalarType dtype,
                                            const ForwardMemoryRequest& r) {
  const int64_t e = static_cast<int64_t>(c10::elementSize(dtype)), n = std::max<int64_t>(r.newTokens, 0);
  const int64_t heads = c.numHeads, kvHeads = c.numKvHeads, dim = c.headDim, hidden = c.hiddenSize;
  ForwardMemoryEstimate m;

  const int64_t end = r.cachedTokens + n;
  if (end > r.cacheCapacity && n > 0) {
    // Prompts reserve exactly; single tokens grow the cache geometrically (KvCache::append). While a
    // layer's store is copied, its old store is alive too.
    const int64_t grown = n > 1 ? end : std::max(end, 2 * r.cacheCapacity);
    m.cacheGrowth = (grown - r.cacheCapacity) * r.cacheBytesPerToken +
                    r.cacheCapacity * r.cacheBytesPerToken / std::max<int64_t>(c.numLayers, 1);
  }

  // Per new token, at the peak inside a layer: residual, normed input and sum (compute dtype), the
  // float32 RMSNorm temporaries and the finiteness flags; q/k/v with their RoPE temporaries; the
  // attention output in float32 plus its compute-dtype copies; the attention's per-row state.
  const int64_t widest = std::max(hidden, heads * dim);
  const int64_t perToken = hidden * (3 * e + 2 * 4 + 1) + 2 * (heads + 2 * kvHeads) * dim * e +
                           heads * dim * (4 + 2 * e) + heads * 8 + r.recordedTaps * widest * e;
  m.activations = n * perToken + r.attentionBlockBytes;
  if (r.hybridAsFull) m.activations += 2 * kvHeads * end * dim * e;  // one layer's keys and values at a time

  const int64_t chunk = r.mlpChunkTokens > 0 ? std::min(n, r.mlpChunkTokens) : n;
  m.mlp = 4 * chunk * c.intermediateSize * e + n * hidden * e;  // gate, up, silu, product; output

  const int64_t rows = r.allLogits ? n : std::min<int64_t>(n, 1);
  m.logits = rows * (c.vocabSize * (e + 4) + hidden * e);

  if (r.stats) {
    // About ten [H, Nq] row statistics and a few [H, Nk] column sums per layer, float32.
    m.stats = 16 * r.statsHeads * (n + end) * 4;
    if (r.poolBlock > 0)
      m.stats += 2 * r.poolHeads * ceilDiv(end, r.poolBlock) * ceilDiv(end, r.poolBlock) * 4;
  }
  m.headroom = kMemoryHeadroomBytes;
  return m;
}

int64_t tokensThatFit(const ModelConfig& c, at::ScalarType dtype, const ForwardMemoryRequest& r,
                      int64_t freeBytes) {
  auto fits = [&](int64_t n) {
    ForwardMemoryRequest shorter = r;
    shorter.newTokens = n;
    return estimateForwardMemory(c, dtype, shorter).total() <= freeBytes;
  };
  int64_t lo = 0, hi = std::max<int64_t>(r.newTokens, 0);  // lo fits (or is 0), hi does not
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

MemoryCheck checkForwardMemory(const ModelConfig& c, at::ScalarType dtype, const ForwardMemoryRequest& r,
                               int64_t freeBytes) {
  MemoryCheck out;
  out.needBytes = estimateForwardMemory(c, dtype, r).total();
  out.freeBytes = freeBytes;
  out.fits = freeBytes <= 0 || out.needBytes <= freeBytes;  // unknown free memory: do not refuse
  out.fitTokens = out.fits ? r.newTokens : tokensThatFit(c, dtype, r, freeBytes);
  return out;
}

std::string outOfMemoryMessage(int64_t tokens, const MemoryCheck& m, const std::string& device) {
  return std::to_string(tokens) + " tokens need about " + std::to_string(m.needBytes >> 20) + " MiB on " +
         device + " but " + std::to_string(m.freeBytes >> 20) + " MiB are free; about " +
         std::to_string(m.fitTokens) + " tokens would fit";
}

int64_t freeMemoryBytes(at::Device device) {
#ifdef HEADSCOPE_HAVE_CUDA
  if (device.is_cuda()) return availableCudaBytes(device);
#endif
  return device.is_cpu() ? availableHostBytes() : 0;
}

}  // namespace hs
