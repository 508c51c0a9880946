#include "inference/models/llama_family.h"

namespace hs {

bool isLlamaFamily(const std::string& t) { return t == "llama" || t == "mistral" || t == "qwen2" || t == "qwen3"; }

std::vector<ExpectedTensor> llamaFamilyTensors(const ModelConfig& c) {
  const int64_t hidden = c.hiddenSize, qDim = c.numHeads * c.headDim, kvDim = c.numKvHeads * c.headDim;
  const int64_t inter = c.intermediateSize;
  std::vector<ExpectedTensor> t{
      {"model.embed_tokens.weight", {c.vocabSize, hidden}, TensorNeed::Required, -1, "embedding"},
      {"model.norm.weight", {hidden}, TensorNeed::Required, -1, "final_norm"},
      {"lm_head.weight", {c.vocabSize, hidden},
       c.tieWordEmbeddings ? TensorNeed::TiedToEmbedding : TensorNeed::Required, -1, "lm_head"},
  };
  for (int l = 0; l < static_cast<int>(c.numLayers); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto add = [&](const std::string& name, std::vector<int64_t> shape, TensorNeed n, const std::string& slot) {
      t.push_back({p + name, std::move(shape), n, l, slot});
    };
    add("input_layernorm.weight", {hidden}, TensorNeed::Required, "inputNorm");
    add("post_attention_layernorm.weight", {hidden}, TensorNeed::Required, "postNorm");
    add("self_attn.q_proj.weight", {qDim, hidden}, TensorNeed::Required, "q");
    add("self_attn.k_proj.weight", {kvDim, hidden}, TensorNeed::Required, "k");
    add("self_attn.v_proj.weight", {kvDim, hidden}, TensorNeed::Required, "v");
    add("self_attn.o_proj.weight", {hidden, qDim}, TensorNeed::Required, "o");
    // Biases the config does not call for are not loaded (transformers ignores them too); the
    // loader lists them among the unexpected tensors.
    if (c.qkvBias) {
      add("self_attn.q_proj.bias", {qDim}, TensorNeed::Required, "qBias");
      add("self_attn.k_proj.bias", {kvDim}, TensorNeed::Required, "kBias");
      add("self_attn.v_proj.bias", {kvDim}, TensorNeed::Required, "vBias");
    }
    if (c.outBias) add("self_attn.o_proj.bias", {hidden}, TensorNeed::Required, "oBias");
    if (c.qkNorm) {
      add("self_attn.q_norm.weight", {c.headDim}, TensorNeed::Required, "qNorm");
      add("self_attn.k_norm.weight", {c.headDim}, TensorNeed::Required, "kNorm");
    }
    add("mlp.gate_proj.weight", {inter, hidden}, TensorNeed::Required, "gate");
    add("mlp.up_proj.weight", {inter, hidden}, TensorNeed::Required, "up");
    add("mlp.down_proj.weight", {hidden, inter}, TensorNeed::Required, "down");
    if (c.mlpBias) {
      add("mlp.gate_proj.bias", {inter}, TensorNeed::Required, "gateBias");
      add("mlp.up_proj.bias", {inter}, TensorNeed::Required, "upBias");
      add("mlp.down_proj.bias", {hidden}, TensorNeed::Required, "downBias");
    }
  }
  return t;
}

}  // namespace hs
