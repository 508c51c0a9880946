#include "analysis/head_summary.h"

#include <ATen/ATen.h>

#include <map>
#include <nlohmann/json.hpp>

#include "kernels/core/error.h"

namespace hs::analysis {

std::vector<kernels::TargetSet> tokenTargetSets(const std::vector<TokenId>& ids) {
  const int64_t n = static_cast<int64_t>(ids.size());
  kernels::TargetSet prev{"previous", {0}, {}}, dup{"duplicate", {0}, {}}, ind{"induction", {0}, {}};
  std::map<TokenId, std::vector<int64_t>> seen;  // earlier positions of each token
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) prev.keys.push_back(i - 1);
    const auto it = seen.find(ids[static_cast<size_t>(i)]);
    if (it != seen.end())
      for (int64_t j : it->second) {
        dup.keys.push_back(j);
        if (j + 1 < i) ind.keys.push_back(j + 1);
      }
    seen[ids[static_cast<size_t>(i)]].push_back(i);
    prev.rowStart.push_back(static_cast<int64_t>(prev.keys.size()));
    dup.rowStart.push_back(static_cast<int64_t>(dup.keys.size()));
    ind.rowStart.push_back(static_cast<int64_t>(ind.keys.size()));
  }
  return {prev, dup, ind};
}

kernels::StatsRequest summaryRequest(const std::vector<TokenId>& ids, int64_t sink, int64_t window) {
  kernels::StatsRequest r;
  r.sinkSet = {0};
  r.streamSink = sink;
  r.streamWindow = window;
  r.targets = tokenTargetSets(ids);
  return r;
}

namespace {

// Mean over the rows where `use` is true of a [H, N] statistic, per head.
std::vector<double> rowMean(const at::Tensor& stat, const at::Tensor& use) {
  const auto w = use.to(at::kDouble).unsqueeze(0);
  const auto sum = (stat.to(at::kDouble) * w).sum(1), count = w.sum(1).clamp_min(1.0);
  const auto mean = (sum / count).contiguous();
  return std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
}

}  // namespace

std::vector<HeadScores> summarizeHeads(const ForwardRecord& record, const std::vector<TokenId>& ids, int layers,
                                       int heads) {
  const int64_t n = static_cast<int64_t>(ids.size());
  const auto targets = tokenTargetSets(ids);
  const auto pos = at::arange(n, at::kLong);
  const auto afterFirst = pos >= 1, lastQuarter = pos >= n - std::max<int64_t>(1, n / 4);
  std::vector<at::Tensor> hasTarget;
  for (const auto& t : targets) {
    const auto starts = at::tensor(t.rowStart, at::kLong);
    hasTarget.push_back(starts.narrow(0, 1, n) > starts.narrow(0, 0, n));
  }
  const std::vector<std::string> names{"sink_mass", "sink_mass_last_quarter", "entropy", "streaming_score",
                                       "mean_distance", "waad", "previous_token", "duplicate_token", "induction"};
  std::vector<HeadScores> out;
  for (const auto& name : names)
    out.push_back({name, layers, heads, std::vector<double>(static_cast<size_t>(layers * heads), 0.0)});
  for (int l = 0; l < layers; ++l) {
    const auto it = record.stats.find(l);
    check(it != record.stats.end(), ErrorKind::InvalidArgument, "no statistics recorded for layer " + std::to_string(l),
          {}, "summary");
    const auto& s = it->second;
    check(s.sinkFirst.size(1) == n && s.targetMass.size(0) == 3, ErrorKind::InvalidArgument,
          "statistics do not come from summaryRequest over this prompt", {}, "summary");
    const std::vector<std::vector<double>> perScore{
        rowMean(s.sinkFirst, afterFirst),          rowMean(s.sinkFirst, lastQuarter & afterFirst),
        rowMean(s.entropy, afterFirst),            rowMean(s.streamMass, afterFirst),
        rowMean(s.meanDistance, afterFirst),       rowMean(s.waad, afterFirst),
        rowMean(s.targetMass[0], hasTarget[0]),    rowMean(s.targetMass[1], hasTarget[1]),
        rowMean(s.targetMass[2], hasTarget[2])};
    for (size_t k = 0; k < out.size(); ++k)
      for (int h = 0; h < heads; ++h) out[k].values[static_cast<size_t>(l * heads + h)] = perScore[k][static_cast<size_t>(h)];
  }
  return out;
}

std::string headScoresJson(const std::vector<HeadScores>& scores) {
  nlohmann::json j;
  j["layers"] = scores.empty() ? 0 : scores.front().layers;
  j["heads"] = scores.empty() ? 0 : scores.front().heads;
  for (const auto& s : scores) {
    nlohmann::json rows = nlohmann::json::array();
    for (int l = 0; l < s.layers; ++l) {
      nlohmann::json row = nlohmann::json::array();
      for (int h = 0; h < s.heads; ++h) row.push_back(s.at(l, h));
      rows.push_back(row);
    }
    j["scores"][s.name] = rows;
  }
  return j.dump(1);
}

}  // namespace hs::analysis
