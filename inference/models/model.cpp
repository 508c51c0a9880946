// Loading a model directory into a Model: config, tensor-table checks, weights, tokenizer.
#include "inference/models/model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
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

// Bytes the OS says can still be allocated (MemAvailable), capped by HEADSCOPE_HOST_MEMORY_MB
// (for sharing a machine, and for tests); 0 when unknown.
int64_t availableHostBytes() {
  int64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") avail = kb * 1024;
  if (const char* cap = std::getenv("HEADSCOPE_HOST_MEMORY_MB")) {
    const int64_t capBytes = std::atoll(cap) * (int64_t{1} << 20);
    if (capBytes > 0) avail = avail > 0 ? std::min(avail, capBytes) : capBytes;
  }
  return avail;
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
  m->computeDtype_ = device.is_cpu() ? at::kFloat : at::kBFloat16;

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

KvCache Model::newCache(int64_t tokens) const {
  KvCache cache(static_cast<int>(config_.numLayers), config_.numKvHeads, config_.headDim,
                at::TensorOptions().dtype(computeDtype_).device(device()));
  if (tokens > 0) cache.reserve(tokens);
  return cache;
}

void Model::checkRequest(const std::vector<TokenId>& ids, int64_t cachedTokens) const {
  check(!ids.empty(), ErrorKind::InvalidArgument, "no tokens to run", {}, "ids");
  for (size_t i = 0; i < ids.size(); ++i)
    check(ids[i] >= 0 && ids[i] < config_.vocabSize, ErrorKind::InvalidArgument,
          "token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
              " is outside the vocabulary [0, " + std::to_string(config_.vocabSize) + ")",
          {}, "ids");
  const int64_t total = cachedTokens + static_cast<int64_t>(ids.size());
  // Dynamic NTK scaling exists to run past max_position_embeddings (transformers sets no limit).
  check(total <= config_.maxPositions || config_.rope.type == RopeType::Dynamic, ErrorKind::InvalidArgument,
        std::to_string(total) + " tokens exceed max_position_embeddings = " + std::to_string(config_.maxPositions),
        config_.path, "max_position_embeddings");
  if (!device().is_cpu()) return;  // the CUDA path checks device memory itself
  // Host memory: the cache for every token, activations of the new tokens, one attention block.
  const int64_t elt = static_cast<int64_t>(c10::elementSize(computeDtype_));
  const int64_t perCached = 2 * config_.numLayers * config_.numKvHeads * config_.headDim * elt;
  const int64_t perNew = perCached + (8 * config_.hiddenSize + 3 * config_.intermediateSize + config_.vocabSize) * 4;
  const int64_t fixed = int64_t{256} << 20;  // the rest of the process
  const int64_t need = fixed + perCached * cachedTokens + perNew * static_cast<int64_t>(ids.size());
  const int64_t avail = availableHostBytes();
  if (avail > 0 && need > avail) {
    const int64_t fit = std::max<int64_t>(0, (avail - fixed - perCached * cachedTokens) / perNew);
    throw Error(ErrorKind::OutOfMemory,
                std::to_string(ids.size()) + " tokens need about " + std::to_string(need >> 20) + " MiB but " +
                    std::to_string(avail >> 20) + " MiB are available; about " + std::to_string(fit) +
                    " tokens would fit",
                {}, "prompt");
  }
}

}  // namespace hs
