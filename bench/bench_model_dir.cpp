#include "bench/bench_model_dir.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "inference/formats/safetensors.h"
#include "kernels/core/error.h"

namespace hs::bench {

NamedWeights randomLlamaWeights(const BenchShape& s, uint64_t seed) {
  at::manual_seed(seed);
  auto matrix = [](int64_t out, int64_t in) {
    return at::randn({out, in}) / std::sqrt(static_cast<double>(in));
  };
  const int64_t qDim = s.heads * s.headDim(), kvDim = s.kvHeads * s.headDim();
  NamedWeights w;
  w.emplace_back("model.embed_tokens.weight", at::randn({s.vocab, s.hidden}));
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.emplace_back(p + "input_layernorm.weight", at::ones({s.hidden}));
    w.emplace_back(p + "self_attn.q_proj.weight", matrix(qDim, s.hidden));
    w.emplace_back(p + "self_attn.k_proj.weight", matrix(kvDim, s.hidden));
    w.emplace_back(p + "self_attn.v_proj.weight", matrix(kvDim, s.hidden));
    w.emplace_back(p + "self_attn.o_proj.weight", matrix(s.hidden, qDim));
    w.emplace_back(p + "post_attention_layernorm.weight", at::ones({s.hidden}));
    w.emplace_back(p + "mlp.gate_proj.weight", matrix(s.mlp, s.hidden));
    w.emplace_back(p + "mlp.up_proj.weight", matrix(s.mlp, s.hidden));
    w.emplace_back(p + "mlp.down_proj.weight", matrix(s.hidden, s.mlp));
  }
  w.emplace_back("model.norm.weight", at::ones({s.hidden}));
  w.emplace_back("lm_head.weight", matrix(s.vocab, s.hidden));
  return w;
}

int64_t writeModelDir(const std::string& dir, const BenchShape& s, const NamedWeights& weights, DType dtype) {
  check(dtype == DType::F32 || dtype == DType::BF16, ErrorKind::InvalidArgument,
        "benchmark weights are stored as F32 or BF16, not " + dtypeName(dtype), dir, "dtype");
  std::filesystem::create_directories(dir);
  const nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", s.hidden},
      {"intermediate_size", s.mlp},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kvHeads},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", s.maxPositions},
      {"rms_norm_eps", s.rmsNormEps},
      {"rope_theta", s.ropeTheta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", false},
      {"torch_dtype", dtype == DType::F32 ? "float32" : "bfloat16"},
  };
  const std::string configPath = dir + "/config.json";
  std::ofstream(configPath) << config.dump(2) << "\n";
  check(std::filesystem::file_size(configPath) > 0, ErrorKind::Io, "could not write config.json", configPath);

  const auto stored = dtype == DType::F32 ? at::kFloat : at::kBFloat16;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, tensor] : weights) {
    const auto t = tensor.to(stored).contiguous();
    TensorToWrite out{name, dtype, t.sizes().vec(), std::vector<std::byte>(t.nbytes())};
    std::memcpy(out.bytes.data(), t.data_ptr(), t.nbytes());
    tensors.push_back(std::move(out));
  }
  const std::string path = dir + "/model.safetensors";
  writeSafetensors(path, tensors, {{"format", "pt"}});
  return static_cast<int64_t>(std::filesystem::file_size(path));
}

}  // namespace hs::bench
