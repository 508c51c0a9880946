#include "inference/formats/model_config.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "inference/formats/config_fields.h"
#include "inference/formats/json_text.h"
#include "kernels/core/error.h"

namespace hs {

namespace {

using json = nlohmann::json;

// Per-family defaults, as the transformers config classes set them when a key is absent.
struct Family {
  const char* type;
  int64_t maxPositions;
  int64_t kvHeads;  // 0: num_attention_heads
  int64_t headDim;  // 0: hidden_size / num_attention_heads
  std::optional<int64_t> bos, eos;
};
const Family kFamilies[] = {
    {"llama", 2048, 0, 0, 1, 2},
    {"mistral", 4096 * 32, 8, 0, 1, 2},
    {"qwen2", 32768, 32, 0, std::nullopt, std::nullopt},
    {"qwen3", 32768, 32, 128, std::nullopt, std::nullopt},
};
constexpr const char* kSupportedTypes = "llama, mistral, qwen2, qwen3";
constexpr const char* kSupportedRope = "default, linear, dynamic, llama3";

// Caps that keep a hostile or mistyped config from sizing allocations; real models are far below.
constexpr int64_t kMaxLayers = 1024, kMaxHeads = 1024, kMaxHeadDim = 1024, kMaxHidden = int64_t{1} << 17,
                  kMaxIntermediate = int64_t{1} << 20, kMaxVocab = int64_t{1} << 24,
                  kMaxPositions = int64_t{1} << 24;

const Family& familyOf(const ConfigFields& f) {
  const std::string type = f.requiredString("model_type");
  for (const auto& fam : kFamilies)
    if (type == fam.type) return fam;
  throw Error(ErrorKind::Unsupported,
              fmt::format("model_type \"{}\" is not supported (supported: {})", type, kSupportedTypes),
              f.path(), "model_type");
}

void checkRange(const ConfigFields& f, const std::string& key, int64_t v, int64_t cap) {
  if (v <= 0) throw Error(ErrorKind::Corrupt, fmt::format("must be positive, found {}", v), f.path(), key);
  if (v > cap)
    throw Error(ErrorKind::Corrupt, fmt::format("{} exceeds HeadScope's limit of {}", v, cap), f.path(), key);
}

double positiveNumber(const ConfigFields& f, const std::string& key, double v) {
  if (!(v > 0) || !std::isfinite(v))
    throw Error(ErrorKind::Corrupt, fmt::format("must be a positive finite number, found {}", v), f.path(),
                key);
  return v;
}

// The rope dict is legacy "rope_scaling" (wins when non-null, as in transformers 5's
// convert_rope_params_to_dict) or transformers 5's "rope_parameters"; theta may sit at top level.
RopeConfig parseRope(const ConfigFields& top) {
  RopeConfig rope;
  std::optional<ConfigFields> dict = top.object("rope_scaling");
  if (!dict) dict = top.object("rope_parameters");
  // One dict per layer type ({"full_attention": {...}, ...}) is a transformers 5 form that the
  // supported families do not use (5.17 itself fails on it); reading it as one flat dict would
  // silently fall back to plain RoPE.
  if (dict)
    for (const auto& [k, v] : dict->raw().items())
      if (v.is_object())
        throw Error(ErrorKind::Unsupported, "nested per-layer-type RoPE parameters are not supported",
                    top.path(), dict->field(k));
  rope.theta = top.number("rope_theta").value_or(rope.theta);
  rope.partialRotaryFactor = top.number("partial_rotary_factor").value_or(1.0);
  std::string type = "default";
  if (dict) {
    rope.theta = dict->number("rope_theta").value_or(rope.theta);
    rope.partialRotaryFactor = dict->number("partial_rotary_factor").value_or(rope.partialRotaryFactor);
    type = dict->string("rope_type").value_or(dict->string("type").value_or("default"));
  }
  positiveNumber(top, "rope_theta", rope.theta);
  if (!(rope.partialRotaryFactor > 0 && rope.partialRotaryFactor <= 1))
    throw Error(ErrorKind::Corrupt, fmt::format("must lie in (0, 1], found {}", rope.partialRotaryFactor),
                top.path(), "partial_rotary_factor");
  if (type == "default") return rope;
  const std::string field = dict->prefix();
  if (type == "linear" || type == "dynamic") {
    rope.type = type == "linear" ? RopeType::Linear : RopeType::Dynamic;
    // Dynamic NTK scales against max_position_embeddings: transformers 5.17's
    // _compute_dynamic_ntk_parameters ignores original_max_position_embeddings (and warns about it).
    rope.factor = positiveNumber(top, field + ".factor", dict->requiredNumber("factor"));
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
    rope.factor = positiveNumber(top, field + ".factor", dict->requiredNumber("factor"));
    rope.lowFreqFactor =
        positiveNumber(top, field + ".low_freq_factor", dict->requiredNumber("low_freq_factor"));
    rope.highFreqFactor =
        positiveNumber(top, field + ".high_freq_factor", dict->requiredNumber("high_freq_factor"));
    rope.originalMaxPositions = dict->requiredInteger("original_max_position_embeddings");
    // The smooth interpolation divides by (high - low).
    if (rope.highFreqFactor <= rope.lowFreqFactor)
      throw Error(ErrorKind::Corrupt,
                  fmt::format("high_freq_factor {} must exceed low_freq_factor {}", rope.highFreqFactor,
                              rope.lowFreqFactor),
                  top.path(), field + ".high_freq_factor");
  } else {
    throw Error(
        ErrorKind::Unsupported,
        fmt::format("rope type \"{}\" is not supported (supported: {}); refusing to fall back to plain RoPE",
                    type, kSupportedRope),
        top.path(), field);
  }
  if (rope.originalMaxPositions < 0 || rope.originalMaxPositions > kMaxPositions)
    throw Error(ErrorKind::Corrupt, fmt::format("out of range: {}", rope.originalMaxPositions), top.path(),
                field + ".original_max_position_embeddings");
  return rope;
}

// Per-layer windows as transformers 5.17 builds them. layer_types, when present, marks the sliding
// layers (mistral configs with layer_types load as Ministral, which honours it); otherwise mistral
// slides on every layer and qwen2/qwen3 from layer max_window_layers on. qwen2/qwen3 use the window
// only with use_sliding_window (their config sets sliding_window to None otherwise).
std::vector<int64_t> slidingWindows(const ConfigFields& f, const std::string& type, int64_t layers,
                                    const std::vector<std::string>& layerTypes) {
  std::vector<int64_t> windows(static_cast<std::size_t>(layers), 0);
  if (type == "llama") return windows;
  const bool qwen = type != "mistral";
  const bool use = !qwen || f.boolean("use_sliding_window").value_or(false);
  const int64_t window = use ? f.integerOr("sliding_window", 4096).value_or(0) : 0;
  if (window < 0 || window > kMaxPositions)
    throw Error(ErrorKind::Corrupt, fmt::format("out of range: {}", window), f.path(), "sliding_window");
  int64_t firstWindowed = 0;
  if (qwen && layerTypes.empty())
    firstWindowed = std::max<int64_t>(f.integer("max_window_layers").value_or(28), 0);
  for (int64_t i = firstWindowed; i < layers; ++i) {
    const auto l = static_cast<std::size_t>(i);
    if (layerTypes.empty() || layerTypes[l] == "sliding_attention") windows[l] = window;
  }
  return windows;
}

std::vector<std::string> readLayerTypes(const ConfigFields& f, int64_t layers) {
  std::vector<std::string> types = f.stringList("layer_types");
  if (types.empty()) return types;
  if (static_cast<int64_t>(types.size()) != layers)
    throw Error(ErrorKind::Mismatch,
                fmt::format("has {} entries, num_hidden_layers is {}", types.size(), layers), f.path(),
                "layer_types");
  for (std::size_t i = 0; i < types.size(); ++i)
    if (types[i] != "full_attention" && types[i] != "sliding_attention")
      throw Error(
          ErrorKind::Unsupported,
          fmt::format("layer type \"{}\" is not supported (supported: full_attention, sliding_attention)",
                      types[i]),
          f.path(), fmt::format("layer_types[{}]", i));
  return types;
}

}  // namespace

ModelConfig parseModelConfig(const std::string& jsonText, const std::string& path) {
  const json doc = parseJsonText(jsonText, path);
  if (!doc.is_object())
    throw Error(ErrorKind::Corrupt, fmt::format("must be a JSON object, found {}", doc.type_name()), path);
  const ConfigFields f(doc, path);
  const Family& fam = familyOf(f);
  ModelConfig c;
  c.path = path;
  c.modelType = fam.type;
  c.architectures = f.stringList("architectures");

  c.hiddenSize = f.requiredInteger("hidden_size");
  c.intermediateSize = f.requiredInteger("intermediate_size");
  c.numLayers = f.requiredInteger("num_hidden_layers");
  c.numHeads = f.requiredInteger("num_attention_heads");
  c.vocabSize = f.requiredInteger("vocab_size");
  checkRange(f, "hidden_size", c.hiddenSize, kMaxHidden);
  checkRange(f, "intermediate_size", c.intermediateSize, kMaxIntermediate);
  checkRange(f, "num_hidden_layers", c.numLayers, kMaxLayers);
  checkRange(f, "num_attention_heads", c.numHeads, kMaxHeads);
  checkRange(f, "vocab_size", c.vocabSize, kMaxVocab);
  c.numKvHeads =
      f.integerOr("num_key_value_heads", fam.kvHeads ? fam.kvHeads : c.numHeads).value_or(c.numHeads);
  checkRange(f, "num_key_value_heads", c.numKvHeads, kMaxHeads);
  c.headDim = f.integerOr("head_dim", fam.headDim ? fam.headDim : c.hiddenSize / c.numHeads)
                  .value_or(c.hiddenSize / c.numHeads);
  checkRange(f, "head_dim", c.headDim, kMaxHeadDim);
  c.maxPositions = f.integer("max_position_embeddings").value_or(fam.maxPositions);
  checkRange(f, "max_position_embeddings", c.maxPositions, kMaxPositions);
  if (c.numHeads % c.numKvHeads != 0)
    throw Error(ErrorKind::Mismatch,
                fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}", c.numHeads,
                            c.numKvHeads),
                path, "num_key_value_heads");
  if (c.headDim % 2 != 0)
    throw Error(ErrorKind::Mismatch, fmt::format("must be even for rotary embeddings, found {}", c.headDim),
                path, "head_dim");

  c.rmsNormEps = positiveNumber(f, "rms_norm_eps", f.number("rms_norm_eps").value_or(1e-6));
  c.tieWordEmbeddings = f.boolean("tie_word_embeddings").value_or(false);
  const std::string act = f.string("hidden_act").value_or("silu");
  // transformers maps "swish" to the same SiLU module.
  if (act != "silu" && act != "swish")
    throw Error(ErrorKind::Unsupported,
                fmt::format("activation \"{}\" is not supported (supported: silu)", act), path, "hidden_act");
  c.hiddenAct = "silu";
  const std::string type = fam.type;
  if (type == "llama" || type == "qwen3") {
    c.qkvBias = c.outBias = f.boolean("attention_bias").value_or(false);
  }
  if (type == "llama") c.mlpBias = f.boolean("mlp_bias").value_or(false);
  if (type == "qwen2") c.qkvBias = true;
  if (type == "qwen3") c.qkNorm = true;

  // Llama has no sliding attention, so transformers ignores layer_types there.
  const std::vector<std::string> layerTypes =
      type == "llama" ? std::vector<std::string>{} : readLayerTypes(f, c.numLayers);
  c.rope = parseRope(f);
  const auto rotary = static_cast<int64_t>(static_cast<double>(c.headDim) * c.rope.partialRotaryFactor);
  if (rotary <= 0 || rotary % 2 != 0)
    throw Error(
        ErrorKind::Mismatch,
        fmt::format("head_dim {} x partial_rotary_factor {} gives {} rotary dimensions; need a positive even "
                    "number",
                    c.headDim, c.rope.partialRotaryFactor, rotary),
        path, "partial_rotary_factor");
  c.slidingWindow = slidingWindows(f, type, c.numLayers, layerTypes);

  c.bosTokenId = f.integerOr("bos_token_id", fam.bos);
  if (c.bosTokenId && *c.bosTokenId < 0)
    throw Error(ErrorKind::Corrupt, fmt::format("token id {} is negative", *c.bosTokenId), path,
                "bos_token_id");
  c.eosTokenIds = f.integerList("eos_token_id", fam.eos);
  for (int64_t id : c.eosTokenIds)
    if (id < 0)
      throw Error(ErrorKind::Corrupt, fmt::format("token id {} is negative", id), path, "eos_token_id");
  c.torchDtype = f.string("torch_dtype").value_or(f.string("dtype").value_or(""));
  return c;
}

ModelConfig loadModelConfig(const std::string& pathOrDir) {
  std::string path = pathOrDir;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, fmt::format("cannot open: {}", std::strerror(errno)), path);
  std::stringstream text;
  text << in.rdbuf();
  return parseModelConfig(text.str(), path);
}

}  // namespace hs
