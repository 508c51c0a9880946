// Loading a model directory into a Model: config, tensor-table checks, weights, tokenizer.
#include "inference/models/model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "inference/formats/checkpoint.h"
#include "inference/models/llama_family.h"
#include "kernels/core/error.h"

namespace hs {

namespace {

std::string shapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

at::ScalarType torchType(DType t) {
  switch (t) {
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    default: return at::kFloat;  // never reached: callers check isFloatWeightType first
  }
}

// The stored tensor as a compute tensor. F32 on the CPU aliases the mapping (no copy); other
// types are converted once.
at::Tensor toComputeTensor(const TensorView& tv, at::Device device, at::ScalarType dtype) {
  const auto stored = torchType(tv.dtype);
  const bool aligned = reinterpret_cast<uintptr_t>(tv.data) % dtypeSize(tv.dtype) == 0;
  auto view = at::from_blob(const_cast<std::byte*>(tv.data), tv.shape, at::TensorOptions().dtype(stored));
  if (!aligned) view = view.clone();
  if (stored == dtype && device.is_cpu()) return view;
  return view.to(device, dtype);
}

at::Tensor* weightSlot(LayerWeights& w, const std::string& slot) {
  static const std::map<std::string, at::Tensor LayerWeights::*> slots{
      {"inputNorm", &LayerWeights::inputNorm}, {"postNorm", &LayerWeights::postNorm},
      {"q", &LayerWeights::q},                 {"k", &LayerWeights::k},
      {"v", &LayerWeights::v},                 {"o", &LayerWeights::o},
      {"qBias", &LayerWeights::qBias},         {"kBias", &LayerWeights::kBias},
      {"vBias", &LayerWeights::vBias},         {"oBias", &LayerWeights::oBias},
      {"qNorm", &LayerWeights::qNorm},         {"kNorm", &LayerWeights::kNorm},
      {"gate", &LayerWeights::gate},           {"up", &LayerWeights::up},
      {"down", &LayerWeights::down},           {"gateBias", &LayerWeights::gateBias},
      {"upBias", &LayerWeights::upBias},       {"downBias", &LayerWeights::downBias},
  };
  const auto it = slots.find(slot);
  return it == slots.end() ? nullptr : &(w.*(it->second));
}

at::Device parseDevice(const std::string& name) {
  try {
    at::Device d(name);
    if (d.is_cpu()) return d;
#ifdef HEADSCOPE_HAVE_CUDA
    if (d.is_cuda()) {
      check(at::hasCUDA(), ErrorKind::Device, "no CUDA device is available", {}, "--device");
      return d;
    }
#endif
    throw Error(ErrorKind::Unsupported, "device '" + name + "' is not supported by this build (cpu only)", {},
                "--device");
  } catch (const c10::Error&) {
    throw Error(ErrorKind::InvalidArgument, "unknown device '" + name + "' (expected cpu or cuda[:N])", {},
                "--device");
  }
}

// The compute dtype asked for, or the device's default (float32 on the CPU, bfloat16 on CUDA).
at::ScalarType computeDtypeFor(const LoadOptions& o, at::Device device) {
  if (!o.dtype) return device.is_cpu() ? at::kFloat : at::kBFloat16;
  const at::ScalarType t = *o.dtype;
  check(t == at::kFloat || t == at::kBFloat16 || t == at::kHalf, ErrorKind::InvalidArgument,
        std::string("compute dtype ") + c10::toString(t) + " is not one of float32, bfloat16, float16", {},
        "dtype");
  check(!(t == at::kHalf && device.is_cpu()), ErrorKind::Unsupported,
        "float16 compute needs a CUDA device (on the CPU use float32 or bfloat16)", {}, "dtype");
  return t;
}

}  // namespace

Model::~Model() = default;

at::Device Model::device() const { return embedding_.device(); }

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& options) {
  Progress local;
  Progress& progress = options.progress ? *options.progress : local;
  check(std::filesystem::is_directory(dir), ErrorKind::Io, "model directory does not exist", dir);
  std::unique_ptr<Model> m(new Model);
  m->dir_ = dir;
  m->config_ = loadModelConfig(dir);
  const auto& c = m->config_;
  check(isLlamaFamily(c.modelType), ErrorKind::Unsupported,
        "model_type '" + c.modelType + "' is not supported (llama, mistral, qwen2, qwen3)", c.path, "model_type");
  const at::Device device = parseDevice(options.device);
  m->computeDtype_ = computeDtypeFor(options, device);

  m->checkpoint_ = std::make_shared<Checkpoint>(Checkpoint::open(dir));
  const Checkpoint& ckpt = *m->checkpoint_;
  m->warnings_ = ckpt.warnings();

  // Check the whole table before converting anything, and report every missing tensor at once.
  const auto table = llamaFamilyTensors(c);
  std::vector<std::string> missing;
  std::set<std::string> expected;
  for (const auto& e : table) {
    expected.insert(e.name);
    const TensorView* tv = ckpt.find(e.name);
    if (!tv) {
      if (e.need == TensorNeed::Required) missing.push_back(e.name + " " + shapeString(e.shape));
      continue;
    }
    check(isFloatWeightType(tv->dtype), ErrorKind::Unsupported,
          "dtype " + dtypeName(tv->dtype) + " is not a weight type HeadScope computes from (F32, F16, BF16)",
          tv->file, e.name);
    check(tv->shape == e.shape, ErrorKind::Mismatch,
          "tensor is " + shapeString(tv->shape) + ", config.json implies " + shapeString(e.shape), tv->file, e.name);
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += ", ... (" + std::to_string(missing.size()) + " in all)";
    throw Error(ErrorKind::Mismatch, "checkpoint lacks tensors that config.json requires: " + list, dir,
                missing.front().substr(0, missing.front().find(' ')));
  }
  std::vector<std::string> extra;
  for (const auto& name : ckpt.names())
    if (!expected.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) extra.push_back(name);
  if (!extra.empty())
    m->warnings_.push_back(std::to_string(extra.size()) + " tensor(s) not used by " + c.modelType +
                           " were ignored, e.g. " + extra.front());

  std::set<std::string> dtypes;
  m->layers_.resize(static_cast<size_t>(c.numLayers));
  size_t done = 0;
  for (const auto& e : table) {
    progress.throwIfCancelled("loading weights");
    const TensorView* tv = ckpt.find(e.name);
    ++done;
    if (!tv) continue;
    if (options.checkWeights) {
      auto raw = at::from_blob(const_cast<std::byte*>(tv->data), tv->shape, torchType(tv->dtype)).to(at::kFloat);
      const int64_t bad = raw.isfinite().logical_not().sum().item<int64_t>();
      check(bad == 0, ErrorKind::Numerical, std::to_string(bad) + " NaN/Inf values in the weights", tv->file, e.name);
    }
    dtypes.insert(dtypeName(tv->dtype));
    auto t = toComputeTensor(*tv, device, m->computeDtype_);
    m->parameterCount_ += t.numel();
    if (e.slot == "embedding") m->embedding_ = t;
    else if (e.slot == "final_norm") m->finalNorm_ = t;
    else if (e.slot == "lm_head") m->lmHead_ = t;
    else *weightSlot(m->layers_[static_cast<size_t>(e.layer)], e.slot) = t;
    progress.report(static_cast<double>(done) / static_cast<double>(table.size()), "loading weights");
  }
  if (!m->lmHead_.defined()) m->lmHead_ = m->embedding_;  // tie_word_embeddings
  for (const auto& d : dtypes) m->storedDtype_ += (m->storedDtype_.empty() ? "" : "+") + d;
  if (options.loadTokenizer) {
    m->tokenizer_ = loadTokenizer(dir);
    // An id past the embedding rows would index out of the table (reliability.md case 27).
    check(m->tokenizer_->vocabSize() <= c.vocabSize, ErrorKind::Mismatch,
          "the tokenizer has " + std::to_string(m->tokenizer_->vocabSize()) + " ids but the embedding only " +
              std::to_string(c.vocabSize) + " rows",
          c.path, "vocab_size");
  }
  return m;
}

std::unique_ptr<Model> Model::randomInit(const ModelConfig& c, const LoadOptions& options, uint64_t seed,
                                         double initStd) {
  const std::string src = c.path.empty() ? "random model config" : c.path;
  check(isLlamaFamily(c.modelType), ErrorKind::InvalidArgument,
        "model_type '" + c.modelType + "' is not supported (llama, mistral, qwen2, qwen3)", src,
        "model_type");
  check(
      c.hiddenSize > 0 && c.intermediateSize > 0 && c.numLayers > 0 && c.vocabSize > 0 && c.maxPositions > 0,
      ErrorKind::InvalidArgument, "sizes must be positive", src, "hidden_size");
  check(c.numHeads > 0 && c.numKvHeads > 0 && c.numHeads % c.numKvHeads == 0, ErrorKind::InvalidArgument,
        "num_attention_heads must be a positive multiple of num_key_value_heads", src, "num_key_value_heads");
  check(c.headDim > 0 && c.headDim % 2 == 0, ErrorKind::InvalidArgument, "head_dim must be positive and even",
        src, "head_dim");
  check(c.slidingWindow.empty() || static_cast<int64_t>(c.slidingWindow.size()) == c.numLayers,
        ErrorKind::InvalidArgument, "needs one sliding window entry per layer", src, "sliding_window");
  check(initStd > 0, ErrorKind::InvalidArgument, "the init scale must be > 0", {}, "initStd");
  Progress local;
  Progress& progress = options.progress ? *options.progress : local;
  const at::Device device = parseDevice(options.device);
  std::unique_ptr<Model> m(new Model);
  m->dir_ = "random weights (seed " + std::to_string(seed) + ")";
  m->config_ = c;
  m->computeDtype_ = computeDtypeFor(options, device);
  m->storedDtype_ = "random";
  m->layers_.resize(static_cast<size_t>(c.numLayers));

  // A private copy of the device's default generator: seeded here, it leaves the global one alone.
  at::Generator generator;
  {
    auto global = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(global.mutex());
    generator = global.clone();
  }
  generator.set_current_seed(seed);
  const auto opts = at::TensorOptions().dtype(m->computeDtype_).device(device);
  const auto table = llamaFamilyTensors(c);
  size_t done = 0;
  for (const auto& e : table) {
    progress.throwIfCancelled("initialising weights");
    ++done;
    if (e.need == TensorNeed::TiedToEmbedding) continue;
    const bool isNorm = e.slot.find("Norm") != std::string::npos || e.slot == "final_norm";
    const bool isBias = e.slot.find("Bias") != std::string::npos;
    at::Tensor t = isNorm   ? at::ones(e.shape, opts)
                   : isBias ? at::zeros(e.shape, opts)
                            : at::empty(e.shape, opts).normal_(0.0, initStd, generator);
    m->parameterCount_ += t.numel();
    if (e.slot == "embedding")
      m->embedding_ = t;
    else if (e.slot == "final_norm")
      m->finalNorm_ = t;
    else if (e.slot == "lm_head")
      m->lmHead_ = t;
    else
      *weightSlot(m->layers_[static_cast<size_t>(e.layer)], e.slot) = t;
    progress.report(static_cast<double>(done) / static_cast<double>(table.size()), "initialising weights");
  }
  if (!m->lmHead_.defined()) m->lmHead_ = m->embedding_;
  return m;
}

KvCache Model::newCache(int64_t tokens, const HybridLayout& layout) const {
  KvCache cache(static_cast<int>(config_.numLayers), config_.numKvHeads, config_.headDim,
                at::TensorOptions().dtype(computeDtype_).device(device()), layout);
  // Renumbering the kept positions (HybridLayerView) preserves causality and the sink/window rule,
  // not a sliding window's distances to the sink tokens.
  for (int l = 0; l < cache.layers(); ++l)
    check(cache.streamingHeads(l) == 0 || config_.slidingWindow.empty() ||
              config_.slidingWindow[static_cast<size_t>(l)] == 0,
          ErrorKind::Unsupported,
          "layer " + std::to_string(l) + " has a sliding window of " +
              std::to_string(config_.slidingWindow[static_cast<size_t>(l)]) +
              " tokens; streaming heads are supported on full-attention layers only",
          config_.path, "HybridLayout.streamingKvHeads[" + std::to_string(l) + "]");
  if (tokens > 0) {
    // A cache too large for the device is refused with the forward's message (how many tokens would
    // fit) before LibTorch's allocator fails halfway through the layers.
    ForwardMemoryRequest r;
    r.newTokens = tokens;
    r.cacheBytesPerToken = cache.bytesPerCapacityToken();
    r.allLogits = false;
    r.mlpChunkTokens = ForwardOptions{}.mlpChunkTokens;
    r.attentionBlockBytes = device().is_cpu() ? kernels::AttentionCall{}.maxBlockBytes : 0;
    const int64_t free = freeMemoryBytes(device()), need = tokens * r.cacheBytesPerToken + kMemoryHeadroomBytes;
    if (free > 0 && need > free)
      throw Error(ErrorKind::OutOfMemory,
                  "a KV cache for " + std::to_string(tokens) + " tokens needs about " + std::to_string(need >> 20) +
                      " MiB on " + device().str() + " but " + std::to_string(free >> 20) + " MiB are free; about " +
                      std::to_string(checkForwardMemory(config_, computeDtype_, r, free).fitTokens) +
                      " tokens would fit",
                  {}, "tokens");
    try {
      cache.reserve(tokens);
    } catch (const c10::OutOfMemoryError& e) {
      const std::string what = e.what_without_backtrace();
      throw Error(ErrorKind::OutOfMemory,
                  "a KV cache for " + std::to_string(tokens) + " tokens does not fit on " + device().str() + ": " +
                      what.substr(0, what.find('\n')),
                  {}, "tokens");
    }
  }
  return cache;
}

MemoryCheck Model::checkRequest(const std::vector<TokenId>& ids, const KvCache& cache,
                                const ForwardOptions& o) const {
  check(!ids.empty(), ErrorKind::InvalidArgument, "no tokens to run", {}, "ids");
  for (size_t i = 0; i < ids.size(); ++i)
    check(ids[i] >= 0 && ids[i] < config_.vocabSize, ErrorKind::InvalidArgument,
          "token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
              " is outside the vocabulary [0, " + std::to_string(config_.vocabSize) + ")",
          {}, "ids");
  const int64_t n = static_cast<int64_t>(ids.size()), total = cache.length() + n;
  // Dynamic NTK scaling exists to run past max_position_embeddings (transformers sets no limit).
  check(total <= config_.maxPositions || config_.rope.type == RopeType::Dynamic, ErrorKind::InvalidArgument,
        std::to_string(total) + " tokens exceed max_position_embeddings = " + std::to_string(config_.maxPositions),
        config_.path, "max_position_embeddings");

  ForwardMemoryRequest r;
  r.newTokens = n;
  r.cachedTokens = cache.length();
  r.cacheCapacity = cache.capacity();
  r.cacheBytesPerToken = cache.bytesPerCapacityToken();
  r.allLogits = o.allLogits;
  r.mlpChunkTokens = o.mlpChunkTokens;
  r.attentionBlockBytes = device().is_cpu() ? kernels::AttentionCall{}.maxBlockBytes : 0;
  if (o.hooks) {
    r.recordedTaps = static_cast<int64_t>(o.hooks->record.size());
    r.hybridAsFull = cache.hybrid() && (o.hooks->stats || o.hooks->probe || !o.hooks->edits.empty());
    if (o.hooks->stats) {
      r.stats = true;
      r.statsHeads = config_.numHeads;
      r.poolBlock = o.hooks->stats->poolBlock;
      r.poolHeads = o.hooks->stats->poolHeads.empty()
                        ? config_.numHeads
                        : static_cast<int64_t>(o.hooks->stats->poolHeads.size());
    }
  }
  const MemoryCheck m = checkForwardMemory(config_, computeDtype_, r, freeMemoryBytes(device()));
  if (!m.fits) throw Error(ErrorKind::OutOfMemory, outOfMemoryMessage(n, m, device().str()), {}, "prompt");
  return m;
}

}  // namespace hs
