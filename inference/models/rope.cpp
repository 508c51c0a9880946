#include "inference/models/rope.h"

#include <ATen/ATen.h>

#include <cmath>

namespace hs {

at::Tensor ropeInverseFrequencies(const ModelConfig& c, int64_t seqLen) {
  const auto& r = c.rope;
  int64_t dim = static_cast<int64_t>(static_cast<double>(c.headDim) * r.partialRotaryFactor);
  dim -= dim % 2;
  double base = r.theta;
  const int64_t originalMax = r.originalMaxPositions > 0 ? r.originalMaxPositions : c.maxPositions;
  if (r.type == RopeType::Dynamic && seqLen > originalMax) {
    // transformers' _compute_dynamic_ntk_parameters
    const double ratio = r.factor * static_cast<double>(seqLen) / static_cast<double>(originalMax) - (r.factor - 1);
    base = r.theta * std::pow(ratio, static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  auto invFreq = 1.0 / at::pow(base, at::arange(0, dim, 2, at::kDouble) / static_cast<double>(dim));
  if (r.type == RopeType::Linear) invFreq = invFreq / r.factor;
  if (r.type == RopeType::Llama3) {
    // transformers' _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones
    // kept, the band between interpolated smoothly.
    const double oldCtx = static_cast<double>(originalMax);
    const double lowWavelen = oldCtx / r.lowFreqFactor, highWavelen = oldCtx / r.highFreqFactor;
    const auto wavelen = 2 * M_PI / invFreq;
    auto scaled = at::where(wavelen > lowWavelen, invFreq / r.factor, invFreq);
    const auto smooth = (oldCtx / wavelen - r.lowFreqFactor) / (r.highFreqFactor - r.lowFreqFactor);
    const auto smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
    const auto medium = (wavelen >= highWavelen) & (wavelen <= lowWavelen);
    invFreq = at::where(medium, smoothed, scaled);
  }
  return invFreq;
}

RopeTables ropeTables(const ModelConfig& config, int64_t pos0, int64_t n, at::Device device, at::ScalarType dtype) {
  const auto invFreq = ropeInverseFrequencies(config, pos0 + n).to(at::kFloat);
  // Angles in float32 like transformers (inv_freq float32 @ positions float32).
  const auto positions = at::arange(pos0, pos0 + n, at::kLong).to(at::kFloat);
  const auto freqs = at::outer(positions, invFreq);  // [n, rot/2]
  const auto emb = at::cat({freqs, freqs}, -1);
  const auto signedSin = emb.sin();
  signedSin.narrow(-1, 0, signedSin.size(-1) / 2).neg_();
  return {emb.cos().to(device, dtype).unsqueeze(0), signedSin.to(device, dtype).unsqueeze(0)};
}

at::Tensor applyRope(const at::Tensor& x, const RopeTables& t) {
  const int64_t rot = t.cos.size(-1);
  const auto xr = x.narrow(-1, 0, rot);
  const auto x1 = xr.narrow(-1, 0, rot / 2), x2 = xr.narrow(-1, rot / 2, rot / 2);
  // rotate_half(xr) * sin = cat(-x2, x1) * sin = cat(x2, x1) * signedSin, bit for bit: a product's
  // rounding is symmetric in sign. One kernel fewer for q and k in every layer.
  const auto rotated = xr * t.cos + at::cat({x2, x1}, -1) * t.signedSin;
  if (rot == x.size(-1)) return rotated;
  return at::cat({rotated, x.narrow(-1, rot, x.size(-1) - rot)}, -1);
}

}  // namespace hs
