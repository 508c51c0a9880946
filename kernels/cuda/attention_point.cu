// Kernels that need the probability of a few chosen (query, key) pairs rather than whole rows:
// the ACT output fixup, masses on key lists (sink set, target sets) and exact probability tiles.
// Each recomputes q.k for its pairs and normalises with the forward's row log2-sum-exp2.
#include "kernels/cuda/attention_device.cuh"

namespace hs::kernels::cuda {
namespace {

using namespace detail;

constexpr int kWarps = kThreads / 32;
constexpr int kDimPerLane = kMaxHeadDim / 32;  // a warp holds one query row, 4 dims per lane

// Loads query row `row` of head h into this lane's dims (lane + 32 * t), pre-scaled to log2 units.
template <typename T>
__device__ __forceinline__ void loadQueryRow(const AttentionParams& p, int h, int64_t row,
                                             float qv[kDimPerLane]) {
  const T* q = rowPtr<T>(p.q, h, row);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < kDimPerLane; ++t) {
    const int d = lane + 32 * t;
    qv[t] = d < p.dim ? toFloat(q[d]) * (p.scale * kLog2e) : 0.0f;
  }
}

// Log2-domain logit of (row's query, key) with bias; every lane gets the value.
template <typename T>
__device__ __forceinline__ float logit2(const AttentionParams& p, int h, int kvh, int64_t key,
                                        const float qv[kDimPerLane]) {
  const T* k = rowPtr<T>(p.k, kvh, key);
  const int lane = threadIdx.x % 32;
  float acc = 0.0f;
#pragma unroll
  for (int t = 0; t < kDimPerLane; ++t) {
    const int d = lane + 32 * t;
    if (d < p.dim) acc = fmaf(qv[t], toFloat(k[d]), acc);
  }
  acc = groupSum<32>(acc);
  return p.bias ? fmaf(p.bias[static_cast<int64_t>(h) * p.nk + key], kLog2e, acc) : acc;
}

// One warp per (row, head) of an attenuated head. The forward left out = sum over the other keys of
// p_j v_j (so no cancellation when almost all mass is on K); here out = gain * out + keep * sum_K p_j v_j.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    attenuationFixupKernel(const AttentionParams p, const int64_t* keyStart, const int64_t* keys) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int h = blockIdx.y, lane = threadIdx.x % 32;
  if (row >= p.nq || p.beta[h] < 0.0f) return;
  const RowAct act = rowAct(p, h, row);
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const int64_t idx = static_cast<int64_t>(h) * p.nq + row;
  const float lse2 = p.rowLse2[idx];
  float qv[kDimPerLane], pv[kDimPerLane] = {};
  loadQueryRow<T>(p, h, row, qv);
  for (int64_t e = keyStart[h]; e < keyStart[h + 1]; ++e) {
    const int64_t key = keys[e];
    if (!visible(p, hm, h, p.queryStart + row, key)) continue;
    const float pr = exp2f(logit2<T>(p, h, kvh, key, qv) - lse2);
    const T* v = rowPtr<T>(p.v, kvh, key);
#pragma unroll
    for (int t = 0; t < kDimPerLane; ++t)
      if (lane + 32 * t < p.dim) pv[t] = fmaf(pr, toFloat(v[lane + 32 * t]), pv[t]);
  }
  float* out = static_cast<float*>(p.out) + idx * p.dim;
#pragma unroll
  for (int t = 0; t < kDimPerLane; ++t) {
    const int d = lane + 32 * t;
    if (d < p.dim) out[d] = act.gain * out[d] + act.keep * pv[t];
  }
}

// One warp per (row, head): sum of final probabilities over a key list.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    keyMassKernel(const AttentionParams p, const int64_t* rowStart, const int64_t* keys, int64_t sharedCount,
                  float* out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int h = blockIdx.y;
  if (row >= p.nq) return;
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const int64_t idx = static_cast<int64_t>(h) * p.nq + row;
  const float lse2 = p.rowLse2[idx];
  const RowAct act = rowAct(p, h, row);
  float qv[kDimPerLane];
  loadQueryRow<T>(p, h, row, qv);
  const int64_t e0 = rowStart ? rowStart[row] : 0, e1 = rowStart ? rowStart[row + 1] : sharedCount;
  float mass = 0.0f;
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t key = keys[e];
    if (key < 0 || !visible(p, hm, h, p.queryStart + row, key)) continue;
    mass += finalProb(logit2<T>(p, h, kvh, key, qv), lse2, act, key);
  }
  if (threadIdx.x % 32 == 0) out[idx] = mass;
}

// One thread per tile element; the tile is small (a zoomed view), so a plain dot product suffices.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    probabilityTileKernel(const AttentionParams p, int h, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                          float* out) {
  const int64_t cols = k1 - k0;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (e >= (q1 - q0) * cols) return;
  const int64_t qpos = q0 + e / cols, key = k0 + e % cols, row = qpos - p.queryStart;
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  float pr = 0.0f;
  if (row >= 0 && row < p.nq && visible(p, hm, h, qpos, key)) {
    const int kvh = h / (p.heads / p.kvHeads);
    const T* q = rowPtr<T>(p.q, h, row);
    const T* k = rowPtr<T>(p.k, kvh, key);
    float acc = 0.0f;
    for (int d = 0; d < p.dim; ++d) acc = fmaf(toFloat(q[d]), toFloat(k[d]), acc);
    float s2 = acc * (p.scale * kLog2e);
    if (p.bias) s2 = fmaf(p.bias[static_cast<int64_t>(h) * p.nk + key], kLog2e, s2);
    const float lse2 = p.rowLse2[static_cast<int64_t>(h) * p.nq + row];
    pr = finalProb(s2, lse2, rowAct(p, h, row), key);
  }
  out[e] = pr;
}

dim3 rowGrid(const AttentionParams& p) {
  return dim3(static_cast<unsigned>(ceilDiv(p.nq, kWarps)), static_cast<unsigned>(p.heads));
}

}  // namespace

void launchAttenuationFixup(const AttentionParams& p, const int64_t* keyStart, const int64_t* keys,
                            cudaStream_t stream) {
  if (p.nq == 0) return;
  detail::checkShape(p, "attention_act_fixup");
  detail::dispatchType(p.type, [&](auto t) {
    attenuationFixupKernel<decltype(t)><<<rowGrid(p), kThreads, 0, stream>>>(p, keyStart, keys);
  });
  checkLaunch("attention_act_fixup");
}

void launchKeyMass(const AttentionParams& p, const int64_t* rowStart, const int64_t* keys,
                   int64_t sharedCount, float* out, cudaStream_t stream) {
  if (p.nq == 0) return;
  detail::checkShape(p, "attention_key_mass");
  detail::dispatchType(p.type, [&](auto t) {
    keyMassKernel<decltype(t)><<<rowGrid(p), kThreads, 0, stream>>>(p, rowStart, keys, sharedCount, out);
  });
  checkLaunch("attention_key_mass");
}

void launchProbabilityTile(const AttentionParams& p, int head, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                           float* out, cudaStream_t stream) {
  const int64_t n = (q1 - q0) * (k1 - k0);
  if (n <= 0) return;
  detail::checkShape(p, "attention_probability_tile");
  detail::dispatchType(p.type, [&](auto t) {
    probabilityTileKernel<decltype(t)>
        <<<static_cast<unsigned>(ceilDiv(n, kThreads)), kThreads, 0, stream>>>(p, head, q0, q1, k0, k1, out);
  });
  checkLaunch("attention_probability_tile");
}

}  // namespace hs::kernels::cuda
