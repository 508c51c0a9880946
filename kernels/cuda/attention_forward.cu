// Fused causal attention forward: one CTA per (query tile, head), K/V tiles staged in shared memory,
// online softmax in the log2 domain, fp32 accumulation. Masked key tiles are skipped, never computed.
// Writes the output and each row's log2-sum-exp2, which the statistics pass reuses.
#include "kernels/cuda/attention_device.cuh"

namespace hs::kernels::cuda {
namespace {

using namespace detail;

// Shared memory of the forward: qT, kT [D][kLdT], V [kTileK][D + 4], P [kTileQ][kLdT].
template <int D>
constexpr size_t forwardSmemBytes() {
  return sizeof(float) * (2 * D * kLdT + kTileK * (D + 4) + kTileQ * kLdT);
}

__device__ __forceinline__ void storeOut(void* out, ElemType t, int64_t idx, float v) {
  switch (t) {
    case ElemType::F32:
      static_cast<float*>(out)[idx] = v;
      break;
    case ElemType::F16:
      static_cast<__half*>(out)[idx] = __float2half(v);
      break;
    case ElemType::BF16:
      static_cast<__nv_bfloat16*>(out)[idx] = __float2bfloat16(v);
      break;
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attentionForwardKernel(const AttentionParams p) {
  constexpr int kChunks = D / 64;  // 64-wide column groups of the output this thread owns
  extern __shared__ float4 smem4[];
  float* qT = reinterpret_cast<float*>(smem4);
  float* kT = qT + D * kLdT;
  float* vS = kT + D * kLdT;
  float* pS = vS + kTileK * (D + 4);

  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  // Later query tiles see more keys: launch them first so the tail of the grid is short.
  const int64_t rowBase = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kTileQ;
  const int h = gridHead(p);
  const int kvh = h / (p.heads / p.kvHeads);
  const HeadMaskDev hm = p.masks ? p.masks[h] : HeadMaskDev{};
  const int rows = static_cast<int>(min(static_cast<int64_t>(kTileQ), p.nq - rowBase));
  const int64_t qlo = p.queryStart + rowBase, qhi = qlo + rows - 1;
  const float biasMul = kLog2e;
  const float* biasRow = p.bias ? p.bias + static_cast<int64_t>(h) * p.nk : nullptr;
  // ACT heads also sum the mass on / off the attenuated keys (same rescaling as l).
  const uint8_t* attRow =
      (p.beta && p.actOn && p.beta[h] >= 0.0f) ? p.attenuated + static_cast<int64_t>(h) * p.nk : nullptr;

  loadTransposed<T, D>(p, p.q, h, rowBase, rows, p.scale * kLog2e, qT);

  float m[4], l[4], lOn[4], o[4][kChunks * 4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = lOn[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks * 4; ++c) o[i][c] = 0.0f;
  }

  int64_t kBegin, kEnd;
  keyRange(p, qlo, qhi, kBegin, kEnd);
  for (int64_t k0 = kBegin; k0 < kEnd; k0 += kTileK) {
    const int64_t k1 = min(k0 + kTileK, kEnd);
    if (tileMasked(p, hm, h, qlo, qhi, k0, k1)) continue;  // uniform across the CTA
    __syncthreads();  // the previous tile's K, V and P are no longer read
    loadTransposed<T, D>(p, p.k, kvh, k0, static_cast<int>(k1 - k0), 1.0f, kT);
    loadRows<T, D>(p, p.v, kvh, k0, static_cast<int>(k1 - k0), vS);
    __syncthreads();

    float s[4][4];
    scoreTile<D>(qT, kT, ty, tx, s);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t qpos = qlo + ty * 4 + i;
      const bool rowOk = ty * 4 + i < rows;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t key = k0 + tx * 4 + j;
        const bool ok = rowOk && key < k1 && visible(p, hm, h, qpos, key);
        s[i][j] = ok ? (biasRow ? fmaf(biasRow[key], biasMul, s[i][j]) : s[i][j]) : -INFINITY;
      }
      const float mNew = fmaxf(m[i], groupMax<16>(fmaxf(fmaxf(s[i][0], s[i][1]), fmaxf(s[i][2], s[i][3]))));
      const float mUse = mNew == -INFINITY ? 0.0f : mNew;  // a row with no key yet: keep zeros
      const float alpha = exp2f(m[i] - mUse);
      float sum = 0.0f, sumOn = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = exp2f(s[i][j] - mUse);
        const int64_t key = k0 + tx * 4 + j;
        if (attRow && key < k1 && attRow[key])
          sumOn += s[i][j];
        else
          sum += s[i][j];
      }
      if (attRow) lOn[i] = lOn[i] * alpha + groupSum<16>(sumOn);
      l[i] = l[i] * alpha + groupSum<16>(sum);  // with ACT: the mass off the attenuated keys
      m[i] = mNew;
#pragma unroll
      for (int c = 0; c < kChunks * 4; ++c) o[i][c] *= alpha;
      if (attRow) {  // ACT: the output keeps only the off-key part; the fixup adds the rest
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t key = k0 + tx * 4 + j;
          if (key < k1 && attRow[key]) s[i][j] = 0.0f;
        }
      }
      *reinterpret_cast<float4*>(pS + (ty * 4 + i) * kLdT + tx * 4) =
          make_float4(s[i][0], s[i][1], s[i][2], s[i][3]);
    }
    __syncthreads();

    // O[rows, D] += P[rows, keys] V[keys, D]
    for (int c = 0; c < kTileK; c += 4) {
      float4 pr[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) pr[i] = *reinterpret_cast<const float4*>(pS + (ty * 4 + i) * kLdT + c);
#pragma unroll
      for (int cc = 0; cc < 4; ++cc) {
#pragma unroll
        for (int ch = 0; ch < kChunks; ++ch) {
          const float4 vv = *reinterpret_cast<const float4*>(vS + (c + cc) * (D + 4) + ch * 64 + tx * 4);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const float pv = cc == 0 ? pr[i].x : cc == 1 ? pr[i].y : cc == 2 ? pr[i].z : pr[i].w;
            o[i][ch * 4 + 0] = fmaf(pv, vv.x, o[i][ch * 4 + 0]);
            o[i][ch * 4 + 1] = fmaf(pv, vv.y, o[i][ch * 4 + 1]);
            o[i][ch * 4 + 2] = fmaf(pv, vv.z, o[i][ch * 4 + 2]);
            o[i][ch * 4 + 3] = fmaf(pv, vv.w, o[i][ch * 4 + 3]);
          }
        }
      }
    }
  }

  const float outScale = p.headScale ? p.headScale[h] : 1.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = rowBase + ty * 4 + i;
    if (row >= p.nq) continue;
    const float total = l[i] + lOn[i];
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;  // a fully masked row attends to nothing
    const int64_t base = (static_cast<int64_t>(h) * p.nq + row) * p.dim;
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = ch * 64 + tx * 4 + e;
        if (d >= p.dim) continue;
        float val = o[i][ch * 4 + e] * inv * outScale;
        if (p.headAdd) val += p.headAdd[static_cast<int64_t>(h) * p.dim + d];
        storeOut(p.out, p.outType, base + d, val);
      }
    if (tx != 0) continue;
    const int64_t idx = static_cast<int64_t>(h) * p.nq + row;
    p.rowLse2[idx] = total > 0.0f ? m[i] + log2f(total) : -INFINITY;
    if (attRow) p.actOn[idx] = lOn[i] * inv, p.actOff[idx] = l[i] * inv;
  }
}

template <typename T, int D>
void launchForward(const AttentionParams& p, cudaStream_t stream) {
  constexpr size_t smem = forwardSmemBytes<D>();
  checkCuda(cudaFuncSetAttribute(attentionForwardKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(smem)),
            "attention_forward", "shared memory attribute");
  const dim3 grid(static_cast<unsigned>(ceilDiv(p.nq, kTileQ)), static_cast<unsigned>(p.numHeads));
  attentionForwardKernel<T, D><<<grid, kThreads, smem, stream>>>(p);
  checkLaunch("attention_forward");
}

}  // namespace

void launchAttentionForward(const AttentionParams& p, cudaStream_t stream) {
  if (p.nq == 0 || p.numHeads == 0) return;
  detail::checkShape(p, "attention_forward");
  detail::dispatchType(p.type, [&](auto t) {
    using T = decltype(t);
    if (p.dim <= 64)
      launchForward<T, 64>(p, stream);
    else
      launchForward<T, 128>(p, stream);
  });
}

}  // namespace hs::kernels::cuda
