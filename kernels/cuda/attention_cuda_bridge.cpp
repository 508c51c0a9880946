// attentionCuda: turns an AttentionCall into the raw kernels' parameters, uploads the per-head edits,
// runs forward -> ACT fixup -> statistics -> key masses/tiles -> streaming mix, and returns the output
// in q's dtype and the statistics as float32 CPU tensors (the LayerStats contract).
#include "kernels/cuda/attention_cuda_bridge.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_stats.h"
#include "kernels/core/error.h"
#include "kernels/core/torch_compat.h"
#include "kernels/cuda/attention_kernels.h"

namespace hs::kernels {
namespace {

namespace kc = hs::kernels::cuda;

constexpr double kLog2eD = 1.4426950408889634;

thread_local bool tPoison = false;
thread_local cuda::KernelPath tPath = cuda::KernelPath::Auto;

kc::ElemType elemType(at::ScalarType t) {
  return t == at::kHalf ? kc::ElemType::F16 : t == at::kBFloat16 ? kc::ElemType::BF16 : kc::ElemType::F32;
}

// Copies a host vector to the device (the bytes of T) on the current stream without waiting for it:
// from pinned memory, which LibTorch's host allocator keeps until the copy is done.
template <typename T>
at::Tensor upload(const std::vector<T>& v, at::Device dev) {
  const auto pinned = at::TensorOptions().dtype(at::kByte).pinned_memory(true);
  auto host = at::empty({static_cast<int64_t>(v.size() * sizeof(T))}, pinned);
  if (!v.empty()) std::memcpy(host.data_ptr(), v.data(), v.size() * sizeof(T));
  return host.to(dev, /*non_blocking=*/true);
}

// Starts copying `onDevice` (undefined entries stay undefined) into one pinned host block on a side
// stream, after the work queued so far on `stream`, and returns the host tensors and a function that
// waits for them. The device tensors may be dropped at once: the caching allocator keeps their memory
// until the side stream is done with it. Nothing here waits for the device, so the caller's stream
// runs on while the copy engine works.
std::pair<std::vector<at::Tensor>, std::function<void()>> copyToHostAsync(
    const std::vector<at::Tensor>& onDevice, const c10::cuda::CUDAStream& stream) {
  constexpr int64_t kAlign = 64;
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (const auto& t : onDevice) {
    offsets.push_back(total);
    if (t.defined()) total += (t.numel() * static_cast<int64_t>(t.element_size()) + kAlign - 1) / kAlign * kAlign;
  }
  const at::Tensor block =
      at::empty({std::max<int64_t>(total, 1)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  at::cuda::CUDAEvent computed;
  computed.record(stream);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, stream.device_index());
  computed.block(side);
  std::vector<at::Tensor> onHost;
  {
    const c10::cuda::CUDAStreamGuard onSide(side);
    for (size_t i = 0; i < onDevice.size(); ++i) {
      const at::Tensor& t = onDevice[i];
      if (!t.defined()) {
        onHost.emplace_back();
        continue;
      }
      const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
      at::Tensor host = block.narrow(0, offsets[i], bytes).view(t.scalar_type()).view(t.sizes());
      host.copy_(t, /*non_blocking=*/true);
      t.record_stream(side);
      onHost.push_back(std::move(host));
    }
  }
  auto copied = std::make_shared<at::cuda::CUDAEvent>();
  copied->record(side);
  return {std::move(onHost), [copied] {
            try {
              copied->synchronize();
            } catch (const c10::Error& e) {
              throw Error(ErrorKind::Device,
                          std::string("copying attention statistics to the host: ") + e.what_without_backtrace(),
                          "attention_cuda", "statistics");
            }
          }};
}

template <typename T>
const T* ptr(const at::Tensor& t) {
  return t.defined() ? reinterpret_cast<const T*>(t.data_ptr()) : nullptr;
}

// A buffer the kernels overwrite completely: poisoned with NaN under ScopedOutputPoisoning.
at::Tensor written(at::IntArrayRef shape, const at::TensorOptions& opt) {
  auto t = at::empty(shape, opt);
  if (tPoison) t.fill_(opt.dtype() == at::kLong ? -1.0 : std::numeric_limits<double>::quiet_NaN());
  return t;
}

// A [heads, tokens, dim] tensor with unit stride along dim as the kernels see it (empty when undefined).
kc::TensorView3 viewOf(const at::Tensor& t) {
  return t.defined() ? kc::TensorView3{t.data_ptr(), t.stride(0), t.stride(1)} : kc::TensorView3{};
}

bool aligned16(const at::Tensor& t) {
  const int64_t es = static_cast<int64_t>(t.element_size());
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && (t.stride(0) * es) % 16 == 0 &&
         (t.stride(1) * es) % 16 == 0;
}

// Device copies of the per-head edits, kept alive for the launches that read them.
struct DeviceEdits {
  std::vector<kc::HeadMaskDev> hostMasks;
  at::Tensor masks, keyAllowed, keyTileAny, blocks, bias, attenuated, beta, attStart, attKeys;
};

DeviceEdits buildEdits(const LayerEdits& e, int64_t heads, int64_t nk, at::Device dev,
                       kc::AttentionParams& p) {
  DeviceEdits d;
  d.hostMasks.resize(heads);
  std::vector<uint8_t> keyAllowed, blocks;
  for (const auto& [h, m] : e.masks) {
    auto& hm = d.hostMasks[h];
    if (m.kind == HeadMask::Kind::SinkWindow) {
      hm.hasSinkWindow = 1, hm.sink = m.sink, hm.window = m.window;
    } else if (m.kind == HeadMask::Kind::KeySet) {
      if (keyAllowed.empty()) keyAllowed.assign(heads * nk, 1);
      std::vector<uint8_t> mine(nk, 0);
      for (int64_t j : m.keys)
        if (j >= 0 && j < nk) mine[j] = 1;
      for (int64_t j = 0; j < nk; ++j) keyAllowed[h * nk + j] &= mine[j];  // several key sets intersect
      hm.hasKeySet = 1;
    } else {
      const auto b = m.blocks.to(at::kCPU).to(at::kByte).contiguous();
      hm.hasBlocks = 1, hm.blockOffset = static_cast<int64_t>(blocks.size()), hm.blockSize = m.blockSize;
      hm.blockCols = b.size(1);
      blocks.insert(blocks.end(), b.data_ptr<uint8_t>(), b.data_ptr<uint8_t>() + b.numel());
    }
  }
  if (!keyAllowed.empty()) {
    const int64_t tiles = (nk + kc::kTileK - 1) / kc::kTileK;
    std::vector<uint8_t> any(heads * tiles, 0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < nk; ++j) any[h * tiles + j / kc::kTileK] |= keyAllowed[h * nk + j];
    d.keyAllowed = upload(keyAllowed, dev), d.keyTileAny = upload(any, dev);
  }
  if (!blocks.empty()) d.blocks = upload(blocks, dev);
  if (!e.biases.empty()) {
    std::vector<float> bias(heads * nk, 0.0f);
    for (const auto& b : e.biases)  // duplicates add up, as index_add_ does on the CPU
      for (int64_t j : b.keys)
        if (j >= 0 && j < nk) bias[b.head * nk + j] += static_cast<float>(b.value);
    d.bias = upload(bias, dev);
  }
  if (!e.attenuations.empty()) {
    std::vector<uint8_t> att(heads * nk, 0);
    std::vector<float> beta(heads, -1.0f);
    std::vector<int64_t> start(heads + 1, 0), keys;
    for (const auto& a : e.attenuations) beta[a.head] = static_cast<float>(a.beta);
    for (const auto& a : e.attenuations)
      for (int64_t j : a.keys)
        if (j >= 0 && j < nk) att[a.head * nk + j] = 1;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < nk; ++j)
        if (att[h * nk + j]) keys.push_back(j);
      start[h + 1] = static_cast<int64_t>(keys.size());
    }
    d.attenuated = upload(att, dev), d.beta = upload(beta, dev);
    d.attStart = upload(start, dev), d.attKeys = upload(keys, dev);
  }
  if (!e.masks.empty()) d.masks = upload(d.hostMasks, dev);
  p.masks = ptr<kc::HeadMaskDev>(d.masks);
  p.keyAllowed = ptr<uint8_t>(d.keyAllowed);
  p.keyTileAny = ptr<uint8_t>(d.keyTileAny);
  p.blocks = ptr<uint8_t>(d.blocks);
  p.bias = ptr<float>(d.bias);
  p.attenuated = ptr<uint8_t>(d.attenuated);
  p.beta = ptr<float>(d.beta);
  return d;
}

// The statistics of one call while they live on the device: the LayerStats tensors (device) and the
// raw pointers the kernels fill.
struct DeviceStats {
  LayerStats s;
  kc::StatsParams sp;
  at::Tensor poolIndex, poolSum;
};

// Allocates the statistics of the call on the device.
DeviceStats allocateStats(const StatsRequest& req, const kc::AttentionParams& p, int64_t queryStart,
                          at::Device dev) {
  const int64_t H = p.heads, nq = p.nq, nk = p.nk;
  const auto f = at::TensorOptions().dtype(at::kFloat).device(dev);
  DeviceStats d;
  LayerStats& s = d.s;
  s.entropy = written({H, nq}, f), s.streamMass = written({H, nq}, f), s.waad = written({H, nq}, f);
  s.meanDistance = written({H, nq}, f), s.top1Prob = written({H, nq}, f);
  s.top1Pos = written({H, nq}, f.dtype(at::kLong));
  s.colSum = at::zeros({H, nk}, f), s.colSumBand = at::zeros({H, nk}, f);  // both passes add into them
  kc::StatsParams& sp = d.sp;
  sp.streamSink = req.streamSink, sp.streamWindow = req.streamWindow, sp.distanceCap = req.distanceCap;
  sp.bandLo = req.bandLo, sp.bandHi = req.bandHi;
  sp.entropy = s.entropy.data_ptr<float>(), sp.streamMass = s.streamMass.data_ptr<float>();
  sp.waad = s.waad.data_ptr<float>(), sp.meanDistance = s.meanDistance.data_ptr<float>();
  sp.top1Prob = s.top1Prob.data_ptr<float>(), sp.top1Pos = s.top1Pos.data_ptr<int64_t>();
  sp.colSum = s.colSum.data_ptr<float>(), sp.colSumBand = s.colSumBand.data_ptr<float>();
  at::Tensor& poolIndex = d.poolIndex;
  at::Tensor& poolSum = d.poolSum;
  if (req.poolBlock > 0) {
    std::vector<int32_t> index(H, -1);
    int32_t slots = 0;
    if (req.poolHeads.empty())
      for (int64_t h = 0; h < H; ++h) index[h] = slots++;
    for (int h : req.poolHeads) index[h] = slots++;  // a head listed twice keeps its last slot
    const int64_t b = req.poolBlock, rows = (queryStart + nq + b - 1) / b, cols = (nk + b - 1) / b;
    s.poolMax = at::zeros({slots, rows, cols}, f), poolSum = at::zeros({slots, rows, cols}, f);
    poolIndex = upload(index, dev);
    sp.poolBlock = b, sp.poolRows = rows, sp.poolCols = cols, sp.poolIndex = ptr<int32_t>(poolIndex);
    sp.poolMax = s.poolMax.data_ptr<float>(), sp.poolSum = poolSum.data_ptr<float>();
    s.poolBlock = b;
  }
  s.queryEnd = queryStart + nq;
  return d;
}

// Runs the statistics passes after the forward (p.rowLse2 holds its row log-sum-exp) and returns the
// statistics as float32 CPU tensors, still in flight (LayerStats::inFlight). runPass launches the pass
// that fills the row statistics, column sums and pooled maps of d.sp (tensor cores, CUDA cores or the
// split-KV decode pass); the key masses and tiles follow here.
template <typename RunPass>
LayerStats finishStats(DeviceStats& d, const StatsRequest& req, const kc::AttentionParams& p,
                       int64_t queryStart, at::Device dev, const c10::cuda::CUDAStream& stream,
                       RunPass&& runPass) {
  const int64_t H = p.heads, nq = p.nq, nk = p.nk;
  const auto f = at::TensorOptions().dtype(at::kFloat).device(dev);
  LayerStats& s = d.s;
  const at::Tensor& poolSum = d.poolSum;
  // The key lists first (host work and uploads), so that the launches below queue back to back.
  const auto first = upload(std::vector<int64_t>{0}, dev);
  std::vector<int64_t> sinks;  // a set: each key in range once
  for (int64_t j : req.sinkSet)
    if (j >= 0 && j < nk) sinks.push_back(j);
  std::sort(sinks.begin(), sinks.end());
  sinks.erase(std::unique(sinks.begin(), sinks.end()), sinks.end());
  // The default sink set is the first token alone: its masses are sinkFirst's, computed once.
  const bool sinksAreFirst = sinks == std::vector<int64_t>{0};
  const auto sinkKeys = sinksAreFirst ? at::Tensor() : upload(sinks, dev);
  std::vector<std::pair<at::Tensor, at::Tensor>> targetLists;  // (row starts, keys) on the device
  std::vector<int64_t> row;
  for (const auto& ts : req.targets) {
    std::vector<int64_t> start{0}, keys;  // each row's keys once, in range: the CPU sums a 0/1 mask
    keys.reserve(ts.keys.size());
    for (int64_t r = 0; r < nq; ++r) {
      row.assign(ts.keys.begin() + ts.rowStart[r], ts.keys.begin() + ts.rowStart[r + 1]);
      if (!std::is_sorted(row.begin(), row.end())) std::sort(row.begin(), row.end());
      row.erase(std::unique(row.begin(), row.end()), row.end());
      for (int64_t j : row)
        if (j >= 0 && j < nk) keys.push_back(j);
      start.push_back(static_cast<int64_t>(keys.size()));
    }
    targetLists.emplace_back(upload(start, dev), upload(keys, dev));
  }

  runPass(d.sp);

  s.sinkFirst = written({H, nq}, f);
  kc::launchKeyMass(p, nullptr, ptr<int64_t>(first), nk > 0 ? 1 : 0, s.sinkFirst.data_ptr<float>(), stream);
  if (sinksAreFirst) {
    s.sinkSet = s.sinkFirst.clone();
  } else {
    s.sinkSet = written({H, nq}, f);
    kc::launchKeyMass(p, nullptr, ptr<int64_t>(sinkKeys), static_cast<int64_t>(sinks.size()),
                      s.sinkSet.data_ptr<float>(), stream);
  }
  s.targetMass = written({static_cast<int64_t>(req.targets.size()), H, nq}, f);
  for (size_t t = 0; t < targetLists.size(); ++t)
    kc::launchKeyMass(p, ptr<int64_t>(targetLists[t].first), ptr<int64_t>(targetLists[t].second), 0,
                      s.targetMass[t].data_ptr<float>(), stream);
  for (const auto& t : req.tiles) {
    auto tile = written({t.q1 - t.q0, t.k1 - t.k0}, f);
    kc::launchProbabilityTile(p, t.head, t.q0, t.q1, t.k0, t.k1, tile.data_ptr<float>(), stream);
    s.tiles.push_back(tile);
  }
  if (req.poolBlock > 0) {  // the block rows this call touches; means as StatsAccumulator::finish
    const int64_t b = req.poolBlock, npos = queryStart + nq, row0 = queryStart / b;
    const int64_t rows = (npos + b - 1) / b - row0;
    s.poolMax = s.poolMax.narrow(1, row0, rows).contiguous();
    s.poolMean = poolSum.narrow(1, row0, rows) / poolCellArea(b, npos, nk, row0, rows, poolSum.size(2), dev);
    s.poolRow0 = row0;
  }
  // To pinned host memory on a side stream (a synchronous copy to fresh pageable memory left the GPU
  // idle for about 14 ms per layer at 32k while the host took its page faults).
  std::vector<at::Tensor*> all{&s.sinkFirst,    &s.sinkSet, &s.entropy,  &s.streamMass, &s.waad,
                               &s.meanDistance, &s.top1Pos, &s.top1Prob, &s.colSum,     &s.colSumBand,
                               &s.targetMass,   &s.poolMax, &s.poolMean};
  for (at::Tensor& t : s.tiles) all.push_back(&t);
  std::vector<at::Tensor> onDevice;
  for (const at::Tensor* t : all) onDevice.push_back(*t);
  auto [onHost, wait] = copyToHostAsync(onDevice, stream);
  for (size_t i = 0; i < all.size(); ++i) *all[i] = std::move(onHost[i]);
  s.inFlight = std::move(wait);
  return std::move(s);
}

// The split-KV decode launch for one query per head (attention_decode.cu): chunks of the cache spread
// over about two CTAs per SM, K/V read once per KV head. With a hybrid cache, KV head j reads ks/vs when
// bit j of streamMask is set (kvHeads counts both kinds). Sets every field but out, work and rowLse2.
kc::DecodeParams decodeParams(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                              int64_t kvHeads, uint64_t streamMask = 0, const at::Tensor& ks = {},
                              const at::Tensor& vs = {}) {
  const int64_t H = q.size(0), D = q.size(2);
  const int64_t nk = k.defined() ? k.size(1) : 0, nkStream = ks.defined() ? ks.size(1) : 0;
  kc::DecodeParams d;
  d.type = elemType(q.scalar_type()), d.outType = d.type;
  d.heads = static_cast<int>(H), d.kvHeads = static_cast<int>(kvHeads), d.dim = static_cast<int>(D);
  d.nk = nk, d.nkStream = nkStream, d.scale = static_cast<float>(scale), d.streamMask = streamMask;
  d.vectorLoads = D % 8 == 0;
  for (const at::Tensor* t : {&q, &k, &v, &ks, &vs})
    if (t->defined()) d.vectorLoads = d.vectorLoads && aligned16(*t);
  d.q = viewOf(q), d.k = viewOf(k), d.v = viewOf(v), d.ks = viewOf(ks), d.vs = viewOf(vs);
  // Chunks sized for the long store: the KV heads that read it get about two CTAs per SM in all.
  const int64_t longHeads = std::max<int64_t>(1, nk >= nkStream ? kvHeads - __builtin_popcountll(streamMask)
                                                                 : __builtin_popcountll(streamMask));
  const int64_t longest = std::max(nk, nkStream);
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t wanted = std::max<int64_t>(1, (2 * sms + longHeads - 1) / longHeads);
  d.splits = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted, (longest + 255) / 256)));
  d.chunk = (longest + d.splits - 1) / d.splits;
  return d;
}

// One decode step on the split-KV kernel; with lse2 ([H] float32), also each head's log2-sum-exp2.
// Returns [H, 1, D] in q's dtype.
at::Tensor splitKvDecode(kc::DecodeParams d, const at::Tensor& q, cudaStream_t stream,
                         float* lse2 = nullptr) {
  at::Tensor out = written({q.size(0), 1, q.size(2)}, q.options());
  const at::Tensor work = at::empty({kc::decodeWorkFloats(d)}, q.options().dtype(at::kFloat));
  d.out = out.data_ptr(), d.work = work.data_ptr<float>(), d.rowLse2 = lse2;
  kc::launchDecodeAttention(d, stream);
  return out;
}

// A call with nothing to observe or change: LibTorch's fused attention (cuDNN/FlashAttention on Hopper)
// for a whole prefill, the split-KV kernel for one decode query that sees every key, when no sliding
// window cuts in; undefined otherwise (the caller runs our kernels). Returns [H, nq, D] in q's dtype.
at::Tensor plainFusedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t queryStart,
                               int64_t slidingWindow, double scale, cudaStream_t stream) {
  const int64_t nq = q.size(1), nk = k.size(1);
  if (queryStart + nq != nk || (slidingWindow > 0 && nk > slidingWindow) || nq == 0) return {};
  if (nq == 1 && q.size(0) / k.size(0) <= kc::kMaxDecodeGroup)
    return splitKvDecode(decodeParams(q, k, v, scale, k.size(0)), q, stream);
  if (nq != nk) return {};
  return compat::causalAttentionGqa(q, k, v, scale);
}

// One decode step with statistics (one query per head seeing every key, no edits): the split-KV decode
// and its log-sum-exp, then the split-KV statistics pass (attention_decode.cu), instead of the prefill
// kernels' one CTA per head walking the whole cache.
at::Tensor decodeWithStats(const AttentionCall& c, const at::Tensor& q, const at::Tensor& k,
                           const at::Tensor& v, at::Device dev, const c10::cuda::CUDAStream& torchStream,
                           LayerStats* statsOut) {
  const cudaStream_t stream = torchStream.stream();
  const int64_t H = q.size(0), nk = k.size(1), D = q.size(2);
  const auto f = at::TensorOptions().dtype(at::kFloat).device(dev);
  kc::DecodeParams d = decodeParams(q, k, v, c.scale, k.size(0));
  const at::Tensor lse2 = written({H, 1}, f);
  at::Tensor out = splitKvDecode(d, q, stream, lse2.data_ptr<float>());
  d.rowLse2 = lse2.data_ptr<float>();
  kc::AttentionParams p;  // for the key masses and tiles
  p.type = elemType(q.scalar_type());
  p.heads = static_cast<int>(H), p.kvHeads = static_cast<int>(k.size(0)), p.dim = static_cast<int>(D);
  p.nq = 1, p.nk = nk, p.queryStart = c.queryStart, p.slidingWindow = c.slidingWindow;
  p.scale = static_cast<float>(c.scale);
  p.vectorLoads = d.vectorLoads;
  p.q = viewOf(q), p.k = viewOf(k), p.v = viewOf(v);
  p.numHeads = static_cast<int>(H);
  p.out = out.data_ptr(), p.outType = p.type, p.rowLse2 = lse2.data_ptr<float>();
  DeviceStats ds = allocateStats(*c.stats, p, c.queryStart, dev);
  const at::Tensor work = at::empty({kc::decodeStatsWorkFloats(d)}, f);
  *statsOut = finishStats(ds, *c.stats, p, c.queryStart, dev, torchStream, [&](const kc::StatsParams& sp) {
    kc::launchDecodeStats(d, sp, work.data_ptr<float>(), stream);
  });
  if (!c.statsInFlight) statsOut->wait();
  return out;
}

at::Tensor runAttention(const AttentionCall& c, LayerStats* statsOut) {
  kc::validateCudaCall(c);
  check(!c.stats || statsOut, ErrorKind::InvalidArgument, "statistics requested without an output",
        "attention_cuda", "statsOut");
  const at::Device dev = c.q.device();
  const c10::cuda::CUDAGuard guard(dev);
  const c10::cuda::CUDAStream torchStream = c10::cuda::getCurrentCUDAStream(dev.index());
  const cudaStream_t stream = torchStream.stream();
  auto unitLast = [](const at::Tensor& t) { return t.stride(2) == 1 ? t : t.contiguous(); };
  const at::Tensor q = unitLast(c.q), k = unitLast(c.k), v = unitLast(c.v);
  const int64_t H = q.size(0), nq = q.size(1), nk = k.size(1), D = q.size(2);
  const LayerEdits* edits = (c.edits && !c.edits->empty()) ? c.edits : nullptr;
  const bool autoPath = tPath == kc::KernelPath::Auto || tPath == kc::KernelPath::AutoWgmma;
  if (!edits && !c.stats && autoPath) {
    at::Tensor fused = plainFusedAttention(q, k, v, c.queryStart, c.slidingWindow, c.scale, stream);
    if (fused.defined()) return fused;
  }
  if (c.stats && !edits && autoPath && nq == 1 && c.queryStart + 1 == nk &&
      (c.slidingWindow == 0 || nk <= c.slidingWindow) && H / k.size(0) <= kc::kMaxDecodeGroup)
    return decodeWithStats(c, q, k, v, dev, torchStream, statsOut);
  const bool act = edits && !edits->attenuations.empty(), mix = edits && !edits->mixes.empty();
  const bool post = act || mix;  // these rewrite the output after the forward: keep it in float32

  kc::AttentionParams p;
  p.type = elemType(q.scalar_type());
  p.heads = static_cast<int>(H), p.kvHeads = static_cast<int>(k.size(0)), p.dim = static_cast<int>(D);
  p.nq = nq, p.nk = nk, p.queryStart = c.queryStart, p.slidingWindow = c.slidingWindow;
  p.scale = static_cast<float>(c.scale);
  p.vectorLoads = D % 8 == 0 && aligned16(q) && aligned16(k) && aligned16(v);
  p.q = viewOf(q), p.k = viewOf(k), p.v = viewOf(v);
  p.numHeads = static_cast<int>(H);
  DeviceEdits de;
  if (edits) de = buildEdits(*edits, H, nk, dev, p);

  const auto f = at::TensorOptions().dtype(at::kFloat).device(dev);
  // Tensor cores for bf16/fp16 at head_dim 64/128 without ACT; pooled maps whose block is not a multiple
  // of the key tile need the CUDA-core statistics.
  const bool oddPool = c.stats && c.stats->poolBlock > 0 && c.stats->poolBlock % kc::kTileK != 0;
  const bool tensorCores = tPath != kc::KernelPath::CudaCores && kc::tensorCoreEligible(p) && !oddPool;
  // Statistics of a plain prefill: LibTorch's fused forward (cuDNN on Hopper) gives the output and the
  // row log-sum-exp, which the statistics pass reuses; our forward where it cannot.
  at::Tensor out, lse2;
  if (c.stats && !edits && tensorCores && autoPath && c.queryStart == 0 && nq == nk &&
      (c.slidingWindow == 0 || nk <= c.slidingWindow)) {
    auto [fusedOut, lse] = compat::causalAttentionGqaWithLse(q, k, v, c.scale);
    if (fusedOut.defined()) {  // natural log -> log2 of the scaled logits, as our forward writes it
      out = fusedOut;
      lse2 = lse.reshape({H, nq}).to(at::kFloat).mul(kLog2eD).contiguous();
    }
  }
  const bool forwardDone = out.defined();
  if (!forwardDone) {
    out = written({H, nq, D}, q.options().dtype(post ? at::kFloat : q.scalar_type()));
    lse2 = written({H, nq}, f);
  }
  p.out = out.data_ptr(), p.outType = post ? kc::ElemType::F32 : p.type, p.rowLse2 = lse2.data_ptr<float>();
  at::Tensor headScale, headAdd;
  if (edits && edits->headScale.defined()) headScale = edits->headScale.to(f).contiguous();
  if (edits && edits->headAdd.defined()) headAdd = edits->headAdd.to(f).contiguous();
  if (!post) p.headScale = ptr<float>(headScale), p.headAdd = ptr<float>(headAdd);
  at::Tensor actOn, actOff;
  if (act) {
    actOn = written({H, nq}, f), actOff = written({H, nq}, f);
    p.actOn = actOn.data_ptr<float>(), p.actOff = actOff.data_ptr<float>();
  }
  DeviceStats ds;
  if (c.stats) ds = allocateStats(*c.stats, p, c.queryStart, dev);
  if (!forwardDone) {
    if (tensorCores)
      kc::launchAttentionForwardTc(p, stream);
    else
      kc::launchAttentionForward(p, stream);
  }

  if (act) kc::launchAttenuationFixup(p, ptr<int64_t>(de.attStart), ptr<int64_t>(de.attKeys), stream);
  if (c.stats) {
    *statsOut = finishStats(ds, *c.stats, p, c.queryStart, dev, torchStream, [&](const kc::StatsParams& sp) {
      if (tensorCores)
        kc::launchStatsTc(p, sp, stream, /*hopper=*/tPath == kc::KernelPath::AutoWgmma);
      else
        kc::launchAttentionStats(p, sp, stream);
    });
    if (!c.statsInFlight) statsOut->wait();
  }

  if (mix) {  // streaming half: same logits (bias, masks) restricted to sink + window, no ACT
    std::vector<int32_t> heads;
    for (const auto& m : edits->mixes) {
      auto& hm = de.hostMasks[m.head];
      hm.hasStreamWindow = 1, hm.streamSink = m.sink, hm.streamWindow = m.window;
      heads.push_back(m.head);
    }
    const auto masks = upload(de.hostMasks, dev), headList = upload(heads, dev);
    const auto streamOut = at::zeros({H, nq, D}, f), streamLse = at::empty({H, nq}, f);
    kc::AttentionParams sp = p;
    sp.masks = ptr<kc::HeadMaskDev>(masks), sp.headList = ptr<int32_t>(headList);
    sp.numHeads = static_cast<int>(heads.size());
    sp.attenuated = nullptr, sp.beta = nullptr, sp.actOn = nullptr, sp.actOff = nullptr;
    sp.out = streamOut.data_ptr(), sp.outType = kc::ElemType::F32, sp.rowLse2 = streamLse.data_ptr<float>();
    if (tensorCores && kc::tensorCoreEligible(sp))
      kc::launchAttentionForwardTc(sp, stream);
    else
      kc::launchAttentionForward(sp, stream);
    for (const auto& m : edits->mixes) {
      const double a = m.alpha.detach().to(at::kCPU).to(at::kDouble).item<double>();
      out[m.head].mul_(a).add_(streamOut[m.head], 1.0 - a);
    }
  }
  if (post) {
    if (headScale.defined()) out.mul_(headScale.view({H, 1, 1}));
    if (headAdd.defined()) out.add_(headAdd.view({H, 1, D}));
    out = out.to(q.scalar_type());
  }
  return out;
}

}  // namespace

namespace cuda {
ScopedOutputPoisoning::ScopedOutputPoisoning() : previous_(tPoison) {
  tPoison = true;
}
ScopedOutputPoisoning::~ScopedOutputPoisoning() {
  tPoison = previous_;
}
ScopedKernelPath::ScopedKernelPath(KernelPath path) : previous_(tPath) {
  tPath = path;
}
ScopedKernelPath::~ScopedKernelPath() {
  tPath = previous_;
}
}  // namespace cuda

namespace {

// Runs f, turning LibTorch's errors into hs::Error (OutOfMemory, or Device) prefixed by `what`.
template <typename F>
at::Tensor withProjectErrors(const char* what, F&& f) {
  try {
    return f();
  } catch (const c10::OutOfMemoryError& e) {
    throw Error(ErrorKind::OutOfMemory, std::string(what) + ": " + e.what_without_backtrace(), "attention_cuda",
                "device memory");
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::Device, std::string(what) + ": " + e.what_without_backtrace(), "attention_cuda",
                "libtorch");
  }
}

}  // namespace

at::Tensor hybridDecodeAttentionCuda(const HybridDecodeCall& call) {
  const int64_t kvHeads = static_cast<int64_t>(call.streamKvHead.size());
  // The message is built only on failure: this runs for every layer of every decode step.
  const bool fits =
      kvHeads <= 64 && call.q.size(0) / kvHeads <= kc::kMaxDecodeGroup && call.q.size(2) <= kc::kMaxHeadDim;
  if (!fits)
    throw Error(ErrorKind::Unsupported,
                "hybrid decode on CUDA supports at most 64 KV heads, " + std::to_string(kc::kMaxDecodeGroup) +
                    " query heads per KV head and head_dim " + std::to_string(kc::kMaxHeadDim),
                "attention_cuda", "streamKvHead");
  uint64_t mask = 0;
  for (int64_t j = 0; j < kvHeads; ++j)
    if (call.streamKvHead[static_cast<size_t>(j)]) mask |= uint64_t{1} << j;
  return withProjectErrors("CUDA hybrid decode", [&] {
    const c10::cuda::CUDAGuard guard(call.q.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(call.q.device().index()).stream();
    auto unitLast = [](const at::Tensor& t) { return !t.defined() || t.stride(2) == 1 ? t : t.contiguous(); };
    const at::Tensor q = unitLast(call.q);
    return splitKvDecode(decodeParams(q, unitLast(call.fullK), unitLast(call.fullV), call.scale, kvHeads,
                                      mask, unitLast(call.streamK), unitLast(call.streamV)),
                         q, stream);
  });
}

at::Tensor attentionCuda(const AttentionCall& call, LayerStats* statsOut) {
  return withProjectErrors("CUDA attention", [&] { return runAttention(call, statsOut); });
}

}  // namespace hs::kernels
