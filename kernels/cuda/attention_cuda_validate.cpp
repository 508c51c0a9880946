// Validation of an AttentionCall for the CUDA kernels: everything is checked before any device buffer
// is sized from it, and each error names the field and says what was expected and what was found.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <set>
#include <string>
#include <type_traits>

#include "kernels/core/error.h"
#include "kernels/cuda/attention_cuda_bridge.h"
#include "kernels/cuda/attention_kernels.h"

namespace hs::kernels::cuda {
namespace {

constexpr const char* kWhere = "attention_cuda";

// Throws hs::Error(kind) naming the field when cond is false. The message is a string, or a callable
// that returns one: these checks run for every attention call (every layer of every decode step), and
// most messages format shapes or devices, which would cost more host time than the checks themselves.
template <typename Message>
void require(bool cond, ErrorKind kind, const std::string& field, const Message& message) {
  if (cond) return;
  if constexpr (std::is_invocable_v<const Message&>)
    throw Error(kind, message(), kWhere, field);
  else
    throw Error(kind, message, kWhere, field);
}

std::string shapeOf(const at::Tensor& t) {
  return c10::str(t.sizes());
}

void validateTensor(const at::Tensor& t, const char* name, const at::Tensor& q) {
  require(t.defined(), ErrorKind::InvalidArgument, name, "tensor is missing");
  require(t.dim() == 3, ErrorKind::InvalidArgument, name,
          [&] { return "expected [heads, tokens, head_dim], found shape " + shapeOf(t); });
  require(t.is_cuda(), ErrorKind::InvalidArgument, name,
          [&] { return std::string("expected a CUDA tensor, found one on ") + t.device().str(); });
  require(t.device() == q.device(), ErrorKind::InvalidArgument, name,
          [&] { return "expected device " + q.device().str() + " (as q), found " + t.device().str(); });
  const auto st = t.scalar_type();
  require(st == at::kFloat || st == at::kHalf || st == at::kBFloat16, ErrorKind::Unsupported, name,
          [&] { return std::string("expected float32, float16 or bfloat16, found ") + c10::toString(st); });
  require(st == q.scalar_type(), ErrorKind::Mismatch, name, [&] {
    return std::string("expected dtype ") + c10::toString(q.scalar_type()) + " (as q), found " +
           c10::toString(st);
  });
}

void validateEdits(const LayerEdits& e, int64_t heads, int64_t dim, int64_t lastQuery, int64_t nk) {
  auto headField = [](const char* list, size_t i) {
    return std::string("edits.") + list + "[" + std::to_string(i) + "]";
  };
  auto headOk = [&](int h, const std::string& field) {
    require(h >= 0 && h < heads, ErrorKind::InvalidArgument, field,
            [&] { return "head " + std::to_string(h) + " out of range [0, " + std::to_string(heads) + ")"; });
  };
  std::set<int> sinkWindowHeads, blockHeads, actHeads, mixHeads;
  for (size_t i = 0; i < e.masks.size(); ++i) {
    const int h = e.masks[i].first;  // not a structured binding: the messages below capture it
    const HeadMask& m = e.masks[i].second;
    const std::string field = headField("masks", i);
    headOk(h, field);
    if (m.kind == HeadMask::Kind::SinkWindow) {
      require(m.sink >= 0 && m.window >= 0, ErrorKind::InvalidArgument, field, [&] {
        return "expected sink, window >= 0, found " + std::to_string(m.sink) + ", " +
               std::to_string(m.window);
      });
      require(sinkWindowHeads.insert(h).second, ErrorKind::Unsupported, field, [&] {
        return "the CUDA kernels take one sink+window mask per head; head " + std::to_string(h) + " has two";
      });
    } else if (m.kind == HeadMask::Kind::Blocks) {
      require(m.blockSize > 0 && m.blocks.defined() && m.blocks.dim() == 2, ErrorKind::InvalidArgument, field,
              "expected blockSize > 0 and a 2-D [query blocks, key blocks] mask");
      const int64_t needRows = lastQuery / m.blockSize + 1,
                    needCols = nk > 0 ? (nk - 1) / m.blockSize + 1 : 0;
      require(m.blocks.size(0) >= needRows && m.blocks.size(1) >= needCols, ErrorKind::InvalidArgument, field,
              [&] {
                return "block mask is smaller than the sequence: expected at least [" +
                       std::to_string(needRows) + ", " + std::to_string(needCols) + "], found " +
                       shapeOf(m.blocks);
              });
      require(blockHeads.insert(h).second, ErrorKind::Unsupported, field, [&] {
        return "the CUDA kernels take one block mask per head; head " + std::to_string(h) + " has two";
      });
    }
  }
  for (size_t i = 0; i < e.biases.size(); ++i) headOk(e.biases[i].head, headField("biases", i));
  for (size_t i = 0; i < e.attenuations.size(); ++i) {
    const auto& a = e.attenuations[i];
    const std::string field = headField("attenuations", i);
    headOk(a.head, field);
    require(a.beta >= 0.0, ErrorKind::InvalidArgument, field,
            [&] { return "expected beta >= 0, found " + std::to_string(a.beta); });
    require(actHeads.insert(a.head).second, ErrorKind::Unsupported, field, [&] {
      return "the CUDA kernels take one attenuation per head; head " + std::to_string(a.head) + " has two";
    });
  }
  for (size_t i = 0; i < e.mixes.size(); ++i) {
    const auto& m = e.mixes[i];
    const std::string field = headField("mixes", i);
    headOk(m.head, field);
    require(m.alpha.defined() && m.alpha.numel() == 1, ErrorKind::InvalidArgument, field,
            "expected a one-element alpha tensor");
    require(m.sink >= 0 && m.window >= 0, ErrorKind::InvalidArgument, field, "expected sink, window >= 0");
    // The kernels are inference-only: a gradient through alpha would silently be missing.
    require(
        !(m.alpha.requires_grad() && at::GradMode::is_enabled()), ErrorKind::Unsupported, field,
        "alpha requires grad: train DuoAttention gates on the CPU (the CUDA kernels do not differentiate)");
    require(mixHeads.insert(m.head).second, ErrorKind::Unsupported, field, [&] {
      return "the CUDA kernels take one streaming mix per head; head " + std::to_string(m.head) + " has two";
    });
  }
  if (e.headScale.defined())
    require(e.headScale.numel() == heads, ErrorKind::InvalidArgument, "edits.headScale", [&] {
      return "expected " + std::to_string(heads) + " values, found " + std::to_string(e.headScale.numel());
    });
  if (e.headAdd.defined())
    require(e.headAdd.numel() == heads * dim, ErrorKind::InvalidArgument, "edits.headAdd", [&] {
      return "expected [" + std::to_string(heads) + ", " + std::to_string(dim) + "], found " +
             shapeOf(e.headAdd);
    });
}

void validateStats(const StatsRequest& s, int64_t heads, int64_t nq) {
  for (size_t t = 0; t < s.targets.size(); ++t) {
    const auto& ts = s.targets[t];
    const std::string field = "stats.targets[" + std::to_string(t) + "] '" + ts.name + "'";
    require(static_cast<int64_t>(ts.rowStart.size()) == nq + 1 && ts.rowStart.front() == 0 &&
                ts.rowStart.back() == static_cast<int64_t>(ts.keys.size()),
            ErrorKind::InvalidArgument, field, [&] {
              return "expected rowStart of " + std::to_string(nq + 1) +
                     " offsets from 0 to keys.size(), found " + std::to_string(ts.rowStart.size()) +
                     " offsets";
            });
    for (size_t r = 1; r < ts.rowStart.size(); ++r)
      require(ts.rowStart[r] >= ts.rowStart[r - 1], ErrorKind::InvalidArgument, field,
              [&] { return "rowStart must not decrease (row " + std::to_string(r - 1) + ")"; });
  }
  for (int h : s.poolHeads)
    require(h >= 0 && h < heads, ErrorKind::InvalidArgument, "stats.poolHeads",
            [&] { return "head " + std::to_string(h) + " out of range [0, " + std::to_string(heads) + ")"; });
  require(s.poolBlock >= 0, ErrorKind::InvalidArgument, "stats.poolBlock", "expected >= 0");
  for (size_t i = 0; i < s.tiles.size(); ++i) {
    const auto& t = s.tiles[i];
    const std::string field = "stats.tiles[" + std::to_string(i) + "]";
    require(t.head >= 0 && t.head < heads && 0 <= t.q0 && t.q0 < t.q1 && 0 <= t.k0 && t.k0 < t.k1,
            ErrorKind::InvalidArgument, field, "expected a head in range and 0 <= q0 < q1, 0 <= k0 < k1");
    require((t.q1 - t.q0) <= (int64_t{1} << 30) / (t.k1 - t.k0), ErrorKind::OutOfMemory, field, [&] {
      return "tile of " + std::to_string(t.q1 - t.q0) + "x" + std::to_string(t.k1 - t.k0) +
             " is too large (at most 2^30 elements)";
    });
  }
}

}  // namespace

void validateCudaCall(const AttentionCall& c) {
  require(c.q.defined(), ErrorKind::InvalidArgument, "q", "tensor is missing");
  validateTensor(c.q, "q", c.q);
  validateTensor(c.k, "k", c.q);
  validateTensor(c.v, "v", c.q);
  require(c.k.sizes() == c.v.sizes(), ErrorKind::InvalidArgument, "v",
          [&] { return "expected the shape of k " + shapeOf(c.k) + ", found " + shapeOf(c.v); });
  require(c.q.size(2) == c.k.size(2), ErrorKind::InvalidArgument, "k", [&] {
    return "expected head_dim " + std::to_string(c.q.size(2)) + " (as q), found " +
           std::to_string(c.k.size(2));
  });
  const int64_t heads = c.q.size(0), kvHeads = c.k.size(0), dim = c.q.size(2);
  require(kvHeads > 0 && heads % kvHeads == 0, ErrorKind::InvalidArgument, "k", [&] {
    return "expected query heads (" + std::to_string(heads) + ") to be a multiple of KV heads, found " +
           std::to_string(kvHeads);
  });
  require(dim > 0 && dim <= kMaxHeadDim, ErrorKind::Unsupported, "q", [&] {
    return "head_dim " + std::to_string(dim) + " is outside the CUDA kernels' 1.." +
           std::to_string(kMaxHeadDim);
  });
  require(heads <= 65535, ErrorKind::Unsupported, "q",
          [&] { return "expected at most 65535 heads, found " + std::to_string(heads); });
  require(c.queryStart >= 0 && c.queryStart + c.q.size(1) <= c.k.size(1), ErrorKind::InvalidArgument,
          "queryStart", [&] {
            return "queries at positions " + std::to_string(c.queryStart) + ".." +
                   std::to_string(c.queryStart + c.q.size(1) - 1) + " need that many keys, have " +
                   std::to_string(c.k.size(1));
          });
  require(c.slidingWindow >= 0, ErrorKind::InvalidArgument, "slidingWindow", "expected >= 0");
  require(!c.observer, ErrorKind::Unsupported, "observer",
          "probability observers run on the CPU path only; request tiles or statistics on CUDA");
  if (c.edits)
    validateEdits(*c.edits, heads, dim, c.queryStart + std::max<int64_t>(c.q.size(1), 1) - 1, c.k.size(1));
  if (c.stats) validateStats(*c.stats, heads, c.q.size(1));
}

}  // namespace hs::kernels::cuda
