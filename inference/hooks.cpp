#include "inference/hooks.h"

#include <array>
#include <cstdlib>
#include <utility>

namespace hs {

namespace {
const std::array<std::pair<Hook, const char*>, 10> kHookNames{{
    {Hook::ResidPre, "hook_resid_pre"},
    {Hook::Q, "attn.hook_q"},
    {Hook::K, "attn.hook_k"},
    {Hook::V, "attn.hook_v"},
    {Hook::HeadOut, "attn.hook_z"},
    {Hook::AttnOut, "hook_attn_out"},
    {Hook::ResidMid, "hook_resid_mid"},
    {Hook::MlpOut, "hook_mlp_out"},
    {Hook::ResidPost, "hook_resid_post"},
    {Hook::FinalNorm, "ln_final.hook_normalized"},
}};
}  // namespace

std::string tapName(const TapPoint& p) {
  for (const auto& [hook, name] : kHookNames)
    if (hook == p.hook) return p.hook == Hook::FinalNorm ? name : "blocks." + std::to_string(p.layer) + "." + name;
  return "?";
}

std::optional<TapPoint> parseTapName(const std::string& name) {
  if (name == "ln_final.hook_normalized") return TapPoint{Hook::FinalNorm, -1};
  const std::string prefix = "blocks.";
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  const auto dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return std::nullopt;
  const std::string num = name.substr(prefix.size(), dot - prefix.size());
  if (num.find_first_not_of("0123456789") != std::string::npos || num.size() > 6) return std::nullopt;
  const std::string rest = name.substr(dot + 1);
  for (const auto& [hook, hookName] : kHookNames)
    if (hook != Hook::FinalNorm && rest == hookName) return TapPoint{hook, std::atoi(num.c_str())};
  return std::nullopt;
}

}  // namespace hs
