// The instrumentation and intervention API of a forward pass: what a caller can read (statistics,
// probability tiles, activations) and change (edits inside attention, activation replacement).
// The CPU path implements all of it; the CUDA path implements the same structures in its kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "kernels/attention/attention.h"

namespace hs {

// Named activation points of a decoder layer, following TransformerLens' hook names.
enum class Hook {
  ResidPre,   // [N, hidden] input of layer l (blocks.l.hook_resid_pre)
  Q,          // [H, N, D] queries after RoPE (blocks.l.attn.hook_q)
  K,          // [KVH, N, D] keys after RoPE of the new tokens (blocks.l.attn.hook_k)
  V,          // [KVH, N, D] values of the new tokens (blocks.l.attn.hook_v)
  HeadOut,    // [N, H, D] each head's output before o_proj, after edits (blocks.l.attn.hook_z)
  AttnOut,    // [N, hidden] attention block output after o_proj (blocks.l.hook_attn_out)
  ResidMid,   // [N, hidden] residual after the attention add (blocks.l.hook_resid_mid)
  MlpOut,     // [N, hidden] MLP output (blocks.l.hook_mlp_out)
  ResidPost,  // [N, hidden] output of layer l (blocks.l.hook_resid_post)
  FinalNorm,  // [N, hidden] final-norm hidden states, layer -1 (ln_final.hook_normalized)
};

// One activation point: a hook at a layer (layer -1 for FinalNorm).
struct TapPoint {
  Hook hook = Hook::ResidPre;
  int layer = 0;
  bool operator<(const TapPoint& o) const { return hook != o.hook ? hook < o.hook : layer < o.layer; }
  bool operator==(const TapPoint& o) const { return hook == o.hook && layer == o.layer; }
};

// "blocks.3.hook_attn_out", "ln_final.hook_normalized", ...
std::string tapName(const TapPoint& p);
// Parses a tap name; nullopt when it names no hook.
std::optional<TapPoint> parseTapName(const std::string& name);

// Called at every tap point the hooks ask for; returning a defined tensor of the same shape
// replaces the activation (activation patching), an undefined one keeps it.
using TapFunction = std::function<at::Tensor(const TapPoint&, const at::Tensor&)>;

// Called with each block of final attention probabilities [H, rows, Nk] of a layer (CPU only).
using AttentionProbe = std::function<void(int layer, int64_t firstQueryPos, const at::Tensor& probs)>;

// What one forward pass should record and change.
struct ForwardHooks {
  std::map<int, kernels::LayerEdits> edits;     // interventions, by layer
  std::optional<kernels::StatsRequest> stats;   // per-head statistics (and tiles, pooled maps)
  std::set<int> statsLayers;                    // layers to compute them for (empty: all)
  std::set<TapPoint> record;                    // activations to copy into ForwardRecord::taps
  std::set<TapPoint> patch;                     // activations passed to tapFunction
  TapFunction tapFunction;
  AttentionProbe probe;                         // CPU path only
};

// What a forward pass recorded.
struct ForwardRecord {
  std::map<int, kernels::LayerStats> stats;     // by layer; decode steps append
  std::map<TapPoint, at::Tensor> taps;          // the last call's activations
};

}  // namespace hs
