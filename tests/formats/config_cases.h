// config.json case tables shared by test_model_config.cpp and the transformers reference
// comparison in test_hf_reference.cpp: real-world shaped configs, small variants, broken configs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/error.h"

namespace hs::test {

// Shaped like meta-llama/Llama-3.1-8B-Instruct's config.json (transformers 4.43).
inline const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// Shaped like mistralai/Mistral-7B-v0.1's config.json.
inline const char* kMistral7B = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

// Shaped like Qwen/Qwen2.5-7B's config.json.
inline const char* kQwen25_7B = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 131072,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_mrope": false,
  "use_sliding_window": false,
  "vocab_size": 152064
})";

// Shaped like Qwen/Qwen3-8B's config.json as transformers 5 saves it (rope_parameters, dtype,
// layer_types).
inline std::string qwen3_8B() {
  nlohmann::json layerTypes = nlohmann::json::array();
  for (int i = 0; i < 36; ++i) layerTypes.push_back("full_attention");
  return R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "dtype": "bfloat16",
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 12288,
  "layer_types": )" +
         layerTypes.dump() + R"(,
  "max_position_embeddings": 40960,
  "max_window_layers": 36,
  "model_type": "qwen3",
  "num_attention_heads": 32,
  "num_hidden_layers": 36,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 1000000, "rope_type": "default"},
  "sliding_window": null,
  "tie_word_embeddings": false,
  "transformers_version": "5.0.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";
}

// A small config of the given family: `patch` keys set over it (a null stays a JSON null), then
// the `drop` keys removed.
inline std::string small(const std::string& type, const nlohmann::json& patch = nlohmann::json::object(),
                         const std::vector<std::string>& drop = {}) {
  nlohmann::json j = {{"model_type", type},       {"hidden_size", 256},
                      {"intermediate_size", 512}, {"num_hidden_layers", 4},
                      {"num_attention_heads", 8}, {"num_key_value_heads", 2},
                      {"vocab_size", 1000},       {"max_position_embeddings", 512}};
  if (patch.is_object()) j.update(patch);
  for (const auto& key : drop) j.erase(key);
  return j.dump();
}

// Valid configs whose parsed fields are compared with what transformers derives from them
// (tests/fixtures/formats/hf_reference.json): defaults, switches, RoPE variants, sliding windows.
inline std::vector<std::pair<std::string, std::string>> acceptedConfigs() {
  using nlohmann::json;
  const std::vector<std::string> drop = {"num_key_value_heads", "max_position_embeddings"};
  const json llama3 = {{"rope_type", "llama3"},   {"rope_theta", 500000.0},
                       {"factor", 32.0},          {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  const json fourTypes = {"sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  return {
      {"llama31_8b", kLlama31},
      {"mistral_7b_v01", kMistral7B},
      {"qwen25_7b", kQwen25_7B},
      {"qwen3_8b", qwen3_8B()},
      {"llama_defaults", small("llama", json::object(), drop)},
      {"mistral_defaults", small("mistral", json::object(), drop)},
      // transformers defaults these to 32 KV heads, so give them 32 query heads.
      {"qwen2_defaults", small("qwen2", {{"num_attention_heads", 32}}, drop)},
      {"qwen3_defaults", small("qwen3", {{"num_attention_heads", 32}}, drop)},
      {"qwen3_head_dim_64", small("qwen3", {{"head_dim", 64}})},
      {"llama_null_head_dim", small("llama", {{"head_dim", nullptr}, {"num_key_value_heads", nullptr}})},
      {"llama_biases", small("llama", {{"attention_bias", true}, {"mlp_bias", true}})},
      {"qwen3_biases", small("qwen3", {{"attention_bias", true}, {"mlp_bias", true}})},
      {"mistral_attention_bias", small("mistral", {{"attention_bias", true}})},
      {"qwen2_attention_bias_false", small("qwen2", {{"attention_bias", false}})},
      {"llama_head_dim_64", small("llama", {{"head_dim", 64}})},
      {"llama_tied", small("llama", {{"tie_word_embeddings", true}})},
      {"rope_linear_legacy_type", small("llama", {{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}})},
      {"rope_dynamic", small("llama", {{"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 4}}}})},
      {"rope_dynamic_original",
       small("qwen2", {{"rope_scaling",
                        {{"type", "dynamic"}, {"factor", 2}, {"original_max_position_embeddings", 256}}}})},
      {"rope_parameters_llama3", small("llama", {{"rope_parameters", llama3}})},
      {"rope_theta_top_level_with_scaling",
       small("llama", {{"rope_theta", 1234.0}, {"rope_scaling", {{"type", "linear"}, {"factor", 2}}}})},
      {"qwen2_swa_max_window_layers_2",
       small("qwen2", {{"use_sliding_window", true}, {"sliding_window", 1024}, {"max_window_layers", 2}})},
      {"qwen3_swa_defaults", small("qwen3", {{"use_sliding_window", true}})},
      {"qwen3_layer_types", small("qwen3", {{"use_sliding_window", true},
                                            {"sliding_window", 128},
                                            {"max_window_layers", 0},
                                            {"layer_types", fourTypes}})},
      {"qwen2_layer_types_without_use",
       small("qwen2", {{"sliding_window", 128}, {"layer_types", fourTypes}})},
      {"mistral_null_window", small("mistral", {{"sliding_window", nullptr}})},
      {"mistral_layer_types",
       small("mistral", {{"sliding_window", 64}, {"head_dim", 32}, {"layer_types", fourTypes}})},
  };
}

// config.json texts that must fail: the error kind and fragments naming the key.
struct BrokenConfigRow {
  const char* what;
  std::string text;
  ErrorKind kind;
  std::vector<std::string> fragments;
};
inline std::vector<BrokenConfigRow> brokenConfigRows() {
  return {
      {"missing hidden_size",
       small("llama", {}, {"hidden_size"}),
       ErrorKind::Corrupt,
       {"hidden_size: required key is missing"}},
      {"string for an int",
       small("llama", {{"num_attention_heads", "32"}}),
       ErrorKind::Corrupt,
       {"num_attention_heads: expected an integer", "\"32\"", "string"}},
      {"fractional float for an int",
       small("llama", {{"vocab_size", 32.5}}),
       ErrorKind::Corrupt,
       {"vocab_size: expected an integer", "32.5"}},
      {"bool for an int",
       small("llama", {{"num_hidden_layers", true}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: expected an integer"}},
      {"int for a bool",
       small("llama", {{"attention_bias", 1}}),
       ErrorKind::Corrupt,
       {"attention_bias: expected true or false"}},
      {"string eos", small("llama", {{"eos_token_id", {"2"}}}), ErrorKind::Corrupt, {"eos_token_id[0]"}},
      {"negative bos",
       small("llama", {{"bos_token_id", -1}}),
       ErrorKind::Corrupt,
       {"bos_token_id", "negative"}},
      {"unknown model_type",
       small("gemma"),
       ErrorKind::Unsupported,
       {"model_type \"gemma\" is not supported", "llama, mistral, qwen2, qwen3"}},
      {"missing model_type",
       R"({"hidden_size": 8})",
       ErrorKind::Corrupt,
       {"model_type: required key is missing"}},
      {"yarn",
       small("qwen2", {{"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}}}}),
       ErrorKind::Unsupported,
       {"rope_scaling", "rope type \"yarn\" is not supported", "refusing to fall back"}},
      {"su", small("llama", {{"rope_scaling", {{"type", "su"}}}}), ErrorKind::Unsupported, {"\"su\""}},
      {"longrope in rope_parameters",
       small("llama", {{"rope_parameters", {{"rope_type", "longrope"}}}}),
       ErrorKind::Unsupported,
       {"rope_parameters", "\"longrope\""}},
      {"llama3 without low_freq_factor",
       small("llama", {{"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.low_freq_factor: required key is missing"}},
      {"llama3 without original_max_position_embeddings",
       small("llama", {{"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.original_max_position_embeddings"}},
      {"llama3 high <= low",
       small("llama", {{"rope_scaling",
                        {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 4.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.high_freq_factor"}},
      {"linear without factor",
       small("llama", {{"rope_scaling", {{"type", "linear"}}}}),
       ErrorKind::Corrupt,
       {"rope_scaling.factor: required key is missing"}},
      {"rope_scaling not an object",
       small("llama", {{"rope_scaling", "linear"}}),
       ErrorKind::Corrupt,
       {"rope_scaling: expected an object"}},
      {"negative rope_theta", small("llama", {{"rope_theta", -1.0}}), ErrorKind::Corrupt, {"rope_theta"}},
      {"heads not a multiple of kv heads",
       small("llama", {{"num_key_value_heads", 3}}),
       ErrorKind::Mismatch,
       {"num_key_value_heads", "8 is not a multiple of num_key_value_heads 3"}},
      {"zero layers",
       small("llama", {{"num_hidden_layers", 0}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: must be positive, found 0"}},
      {"negative hidden", small("llama", {{"hidden_size", -256}}), ErrorKind::Corrupt, {"hidden_size"}},
      {"too many layers",
       small("llama", {{"num_hidden_layers", 100000}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: 100000 exceeds HeadScope's limit of 1024"}},
      {"huge vocab",
       small("llama", {{"vocab_size", 1LL << 40}}),
       ErrorKind::Corrupt,
       {"vocab_size", "limit"}},
      {"huge max positions",
       small("llama", {{"max_position_embeddings", 1LL << 30}}),
       ErrorKind::Corrupt,
       {"max_position_embeddings"}},
      {"odd head_dim", small("llama", {{"head_dim", 31}}), ErrorKind::Mismatch, {"head_dim: must be even"}},
      {"huge head_dim",
       small("llama", {{"head_dim", 4096}}),
       ErrorKind::Corrupt,
       {"head_dim", "limit of 1024"}},
      {"odd rotary dims",
       small("llama", {{"partial_rotary_factor", 0.1}}),
       ErrorKind::Mismatch,
       {"partial_rotary_factor", "3 rotary dimensions"}},
      {"rotary factor above 1",
       small("llama", {{"partial_rotary_factor", 1.5}}),
       ErrorKind::Corrupt,
       {"partial_rotary_factor", "(0, 1]"}},
      {"gelu", small("llama", {{"hidden_act", "gelu"}}), ErrorKind::Unsupported, {"hidden_act", "\"gelu\""}},
      {"layer_types too short",
       small("qwen3", {{"layer_types", {"full_attention"}}}),
       ErrorKind::Mismatch,
       {"layer_types: has 1 entries, num_hidden_layers is 4"}},
      {"unknown layer type",
       small("qwen2",
             {{"layer_types", {"full_attention", "chunked_attention", "full_attention", "full_attention"}}}),
       ErrorKind::Unsupported,
       {"layer_types[1]", "chunked_attention"}},
      {"negative sliding window",
       small("mistral", {{"sliding_window", -5}}),
       ErrorKind::Corrupt,
       {"sliding_window"}},
      {"rope per layer type differs",
       small("qwen3",
             {{"layer_types", {"full_attention", "sliding_attention", "full_attention", "full_attention"}},
              {"rope_parameters",
               {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}}}}),
       ErrorKind::Unsupported,
       {"rope_parameters.full_attention", "nested per-layer-type RoPE"}},
      {"rope per layer type, equal dicts",
       small("qwen3",
             {{"layer_types", {"full_attention", "full_attention", "sliding_attention", "full_attention"}},
              {"rope_parameters",
               {{"full_attention", {{"rope_type", "default"}}},
                {"sliding_attention", {{"rope_type", "default"}}}}}}),
       ErrorKind::Unsupported,
       {"nested per-layer-type RoPE"}},
      {"integral float for an int",
       small("llama", {{"num_hidden_layers", 3.0}}),
       ErrorKind::Corrupt,
       {"num_hidden_layers: expected an integer", "3.0"}},
      {"invalid JSON",
       "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 40 96\n}",
       ErrorKind::Corrupt,
       {"invalid JSON at line 3, column 22"}},  // the "6" ending the stray token "96"
      {"number overflowing a double (fuzzer finding)",
       R"({"model_type": "llama", "rms_norm_eps": 1e999})",
       ErrorKind::Corrupt,
       {"invalid JSON", "1e999"}},
      {"top-level list", "[1, 2]", ErrorKind::Corrupt, {"must be a JSON object"}},
      {"empty file", "", ErrorKind::Corrupt, {"the file is empty"}},
      {"LFS pointer",
       "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n",
       ErrorKind::Corrupt,
       {"Git LFS pointer"}},
  };
}

}  // namespace hs::test
