// How much memory a forward call needs beyond what is already allocated (weights, the cache so far),
// whether that fits in what the device has free, and how many tokens would. The estimate is plain
// arithmetic over the config, so it is tested on the CPU; only freeMemoryBytes asks the device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "inference/formats/model_config.h"

namespace hs {

// One forward call, as the estimate sees it.
struct ForwardMemoryRequest {
  int64_t newTokens = 0;                 // tokens of this call
  int64_t cachedTokens = 0;              // tokens already in the cache
  int64_t cacheCapacity = 0;             // tokens the cache holds without growing
  int64_t cacheBytesPerToken = 0;        // bytes per token of the cache's growing stores
  bool allLogits = true;                 // logits of every new token, or only of the last one
  bool stats = false;                    // attention statistics on some layer
  int64_t statsHeads = 0;                // query heads of one layer's statistics (all heads)
  int64_t poolBlock = 0, poolHeads = 0;  // block-pooled maps (0: none)
  int64_t recordedTaps = 0;              // activations copied into the ForwardRecord
  int64_t mlpChunkTokens = 0;            // the MLP runs over at most this many tokens at once (0: all)
  int64_t attentionBlockBytes = 0;       // working buffer of the attention (CPU reference: its block bound)
  bool hybridAsFull = false;  // a hybrid cache read as a full one (statistics/edits/probes): K, V copies
};

// The estimate in parts (bytes).
struct ForwardMemoryEstimate {
  int64_t cacheGrowth = 0;  // new cache capacity (exact for prompts, doubling for single tokens)
  int64_t activations = 0;  // residual stream, q/k/v, attention output of the new tokens
  int64_t mlp = 0;          // gate/up/activation of one MLP chunk
  int64_t logits = 0;       // returned rows x vocab (compute dtype, then float32)
  int64_t stats = 0;        // O(N x heads) statistic buffers of one layer, pooled maps
  int64_t headroom = 0;     // library workspaces, allocator rounding
  int64_t total() const { return cacheGrowth + activations + mlp + logits + stats + headroom; }
};

// Fixed allowance for what the estimate does not itemise (BLAS/cuBLAS workspaces, the rest of the
// process on the host).
constexpr int64_t kMemoryHeadroomBytes = int64_t{256} << 20;

ForwardMemoryEstimate estimateForwardMemory(const ModelConfig& config, at::ScalarType computeDtype,
                                            const ForwardMemoryRequest& request);

// Largest n <= request.newTokens whose estimate fits in freeBytes (0 when not even one token does).
int64_t tokensThatFit(const ModelConfig& config, at::ScalarType computeDtype,
                      const ForwardMemoryRequest& request, int64_t freeBytes);

// Result of checking a request against free memory.
struct MemoryCheck {
  int64_t needBytes = 0, freeBytes = 0, fitTokens = 0;
  bool fits = true;
};
MemoryCheck checkForwardMemory(const ModelConfig& config, at::ScalarType computeDtype,
                               const ForwardMemoryRequest& request, int64_t freeBytes);

// "N tokens need about X MiB on DEVICE but Y MiB are free; about M tokens would fit".
std::string outOfMemoryMessage(int64_t tokens, const MemoryCheck& check, const std::string& device);

// Bytes that can still be allocated on `device`, 0 when unknown. CPU: MemAvailable, capped by
// HEADSCOPE_HOST_MEMORY_MB. CUDA: the driver's free memory plus what LibTorch's caching allocator
// holds unused, capped by HEADSCOPE_DEVICE_MEMORY_MB (for sharing a GPU, and for tests).
int64_t freeMemoryBytes(at::Device device);

}  // namespace hs
