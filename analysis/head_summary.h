// Per-(layer, head) summary scores from one instrumented forward pass: sink mass, entropy,
// streaming score, attention distance, previous-token / duplicate-token / induction mass.
#pragma once

#include <string>
#include <vector>

#include "inference/hooks.h"
#include "inference/tokenizers/tokenizer.h"

namespace hs::analysis {

// One score for every (layer, head).
struct HeadScores {
  std::string name;
  int layers = 0, heads = 0;
  std::vector<double> values;  // row-major [layers, heads]
  double at(int layer, int head) const { return values[static_cast<size_t>(layer * heads + head)]; }
};

// TransformerLens' target sets for a token sequence (keys per query position):
// "previous" (i-1), "duplicate" (earlier j with ids[j] == ids[i]), "induction" (j+1 for each earlier
// j with ids[j] == ids[i], j+1 < i).
std::vector<kernels::TargetSet> tokenTargetSets(const std::vector<TokenId>& ids);

// The statistics request behind summarizeHeads for a prompt (sink set {0}, the target sets above,
// streaming mass for (sink, window)).
kernels::StatsRequest summaryRequest(const std::vector<TokenId>& ids, int64_t sink = 4, int64_t window = 64);

// Means over the queries of a prompt forward (positions >= 1; target scores over the queries that
// have a target). The record must come from a forward with summaryRequest(ids).
std::vector<HeadScores> summarizeHeads(const ForwardRecord& record, const std::vector<TokenId>& ids, int layers,
                                       int heads);

// {"layers": L, "heads": H, "scores": {"sink_mass": [[...], ...], ...}}
std::string headScoresJson(const std::vector<HeadScores>& scores);

}  // namespace hs::analysis
