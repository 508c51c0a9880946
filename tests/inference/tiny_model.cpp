#include "tests/inference/tiny_model.h"

#include <cmath>
#include <sstream>

#include "inference/formats/safetensors.h"

namespace hs::test {

Weights randomWeights(const TinySpec& s) {
  at::manual_seed(s.seed);
  Weights w;
  auto rnd = [](std::vector<int64_t> shape, double std) { return at::randn(shape, at::kFloat) * std; };
  w["model.embed_tokens.weight"] = rnd({s.vocab, s.hidden}, 1.0);
  w["model.norm.weight"] = 1.0 + rnd({s.hidden}, 0.1);
  if (!s.tied) w["lm_head.weight"] = rnd({s.vocab, s.hidden}, 0.3);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = 1.0 + rnd({s.hidden}, 0.1);
    w[p + "post_attention_layernorm.weight"] = 1.0 + rnd({s.hidden}, 0.1);
    w[p + "self_attn.q_proj.weight"] = rnd({s.heads * s.headDim, s.hidden}, 0.4);
    w[p + "self_attn.k_proj.weight"] = rnd({s.kvHeads * s.headDim, s.hidden}, 0.4);
    w[p + "self_attn.v_proj.weight"] = rnd({s.kvHeads * s.headDim, s.hidden}, 0.3);
    w[p + "self_attn.o_proj.weight"] = rnd({s.hidden, s.heads * s.headDim}, 0.3);
    if (s.qkvBias) {
      w[p + "self_attn.q_proj.bias"] = rnd({s.heads * s.headDim}, 0.1);
      w[p + "self_attn.k_proj.bias"] = rnd({s.kvHeads * s.headDim}, 0.1);
      w[p + "self_attn.v_proj.bias"] = rnd({s.kvHeads * s.headDim}, 0.1);
      if (s.modelType == "llama") w[p + "self_attn.o_proj.bias"] = rnd({s.hidden}, 0.1);  // attention_bias
    }
    if (s.qkNorm) {
      w[p + "self_attn.q_norm.weight"] = 1.0 + rnd({s.headDim}, 0.1);
      w[p + "self_attn.k_norm.weight"] = 1.0 + rnd({s.headDim}, 0.1);
    }
    w[p + "mlp.gate_proj.weight"] = rnd({s.inter, s.hidden}, 0.3);
    w[p + "mlp.up_proj.weight"] = rnd({s.inter, s.hidden}, 0.3);
    w[p + "mlp.down_proj.weight"] = rnd({s.hidden, s.inter}, 0.3);
  }
  return w;
}

std::string configJson(const TinySpec& s) {
  std::ostringstream o;
  o << "{\"model_type\": \"" << s.modelType << "\", \"hidden_size\": " << s.hidden
    << ", \"intermediate_size\": " << s.inter << ", \"num_hidden_layers\": " << s.layers
    << ", \"num_attention_heads\": " << s.heads << ", \"num_key_value_heads\": " << s.kvHeads
    << ", \"head_dim\": " << s.headDim << ", \"vocab_size\": " << s.vocab
    << ", \"max_position_embeddings\": " << s.maxPositions << ", \"rms_norm_eps\": 1e-06, \"rope_theta\": "
    << s.ropeTheta << ", \"tie_word_embeddings\": " << (s.tied ? "true" : "false")
    << ", \"hidden_act\": \"silu\", \"bos_token_id\": 1, \"eos_token_id\": 2";
  if (s.modelType == "llama") o << ", \"attention_bias\": " << (s.qkvBias ? "true" : "false");
  if (s.modelType == "mistral")
    o << ", \"sliding_window\": " << (s.slidingWindow > 0 ? std::to_string(s.slidingWindow) : "null");
  o << "}";
  return o.str();
}

void writeTinyModel(const std::string& dir, const TinySpec& s, const Weights& w) {
  writeBytes(dir + "/config.json", configJson(s));
  std::vector<TensorToWrite> out;
  for (const auto& [name, t] : w) {
    const auto c = t.contiguous();
    TensorToWrite tw{name, DType::F32, c.sizes().vec(), std::vector<std::byte>(static_cast<size_t>(c.numel()) * 4)};
    std::memcpy(tw.bytes.data(), c.data_ptr<float>(), tw.bytes.size());
    out.push_back(std::move(tw));
  }
  writeSafetensors(dir + "/model.safetensors", out);
}

namespace {

at::Tensor rms(const at::Tensor& x, const at::Tensor& w) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * w.to(at::kDouble);
}

// Rotates pairs (d, d + D/2) by pos * theta^(-2d/D), written out per dimension.
at::Tensor rope(const at::Tensor& x /* [n, heads, D] */, double theta) {
  const int64_t n = x.size(0), d = x.size(2), half = d / 2;
  auto out = x.clone();
  for (int64_t i = 0; i < half; ++i) {
    const double invFreq = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(d));
    const auto ang = at::arange(n, at::kDouble) * invFreq;
    const auto c = ang.cos().view({n, 1}), s = ang.sin().view({n, 1});
    const auto a = x.select(2, i), b = x.select(2, i + half);
    out.select(2, i).copy_(a * c - b * s);
    out.select(2, i + half).copy_(b * c + a * s);
  }
  return out;
}

}  // namespace

at::Tensor referenceForward(const TinySpec& s, const Weights& wIn, const std::vector<int64_t>& ids,
                            const ReferenceEdits& edits, at::Tensor* attnOut) {
  Weights w;
  for (const auto& [k, v] : wIn) w[k] = v.to(at::kDouble);
  const int64_t n = static_cast<int64_t>(ids.size());
  auto h = w["model.embed_tokens.weight"].index_select(0, at::tensor(ids, at::kLong));
  if (attnOut) *attnOut = at::zeros({s.layers, s.heads, n, n}, at::kDouble);
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto lin = [&](const at::Tensor& x, const std::string& name) {
      auto y = at::matmul(x, w[p + name + ".weight"].t());
      return w.count(p + name + ".bias") ? y + w[p + name + ".bias"] : y;
    };
    const auto x = rms(h, w[p + "input_layernorm.weight"]);
    auto q = lin(x, "self_attn.q_proj").view({n, s.heads, s.headDim});
    auto k = lin(x, "self_attn.k_proj").view({n, s.kvHeads, s.headDim});
    const auto v = lin(x, "self_attn.v_proj").view({n, s.kvHeads, s.headDim});
    if (s.qkNorm) {
      q = rms(q, w[p + "self_attn.q_norm.weight"]);
      k = rms(k, w[p + "self_attn.k_norm.weight"]);
    }
    q = rope(q, s.ropeTheta);
    k = rope(k, s.ropeTheta);
    auto z = at::zeros({n, s.heads, s.headDim}, at::kDouble);
    for (int hd = 0; hd < s.heads; ++hd) {
      const int g = hd / (s.heads / s.kvHeads);
      auto scores = at::matmul(q.select(1, hd), k.select(1, g).t()) / std::sqrt(static_cast<double>(s.headDim));
      auto allowed = at::ones({n, n}, at::kBool).tril();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          if (s.slidingWindow > 0 && i - j >= s.slidingWindow) allowed[i][j] = false;
          const auto sw = edits.sinkWindow.find({l, hd});
          if (sw != edits.sinkWindow.end() && !(j < sw->second.first || i - j < sw->second.second))
            allowed[i][j] = false;
        }
      const auto probs = at::softmax(scores.masked_fill(allowed.logical_not(), -INFINITY), -1);
      if (attnOut) (*attnOut)[l][hd].copy_(probs);
      auto out = at::matmul(probs, v.select(1, g));
      const auto sc = edits.headScale.find({l, hd});
      if (sc != edits.headScale.end()) out = out * sc->second;
      z.select(1, hd).copy_(out);
    }
    h = h + lin(z.reshape({n, s.heads * s.headDim}), "self_attn.o_proj");
    const auto y = rms(h, w[p + "post_attention_layernorm.weight"]);
    h = h + lin(at::silu(lin(y, "mlp.gate_proj")) * lin(y, "mlp.up_proj"), "mlp.down_proj");
  }
  const auto out = rms(h, w["model.norm.weight"]);
  return at::matmul(out, (s.tied ? w["model.embed_tokens.weight"] : w["lm_head.weight"]).t());
}

}  // namespace hs::test
