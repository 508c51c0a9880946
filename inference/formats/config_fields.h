// Typed access to the keys of a JSON object (config.json, a rope dict) with errors naming the key.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hs {

// One JSON object of a config file. A key that is absent or null reads as "not given"; a key of
// the wrong JSON type throws Corrupt naming "prefix.key" and what was found.
class ConfigFields {
 public:
  ConfigFields(nlohmann::json object, std::string path, std::string prefix = {});

  const std::string& path() const { return path_; }
  const std::string& prefix() const { return prefix_; }
  const nlohmann::json& raw() const { return object_; }
  // "prefix.key", or "key" at top level: the field name errors report.
  std::string field(const std::string& key) const;

  // Integers: JSON integers only; "32", 32.5 and 32.0 are rejected (as transformers 5 does).
  std::optional<int64_t> integer(const std::string& key) const;
  // Like integer(), but an absent key (not a null one) gives `ifAbsent`.
  std::optional<int64_t> integerOr(const std::string& key, std::optional<int64_t> ifAbsent) const;
  int64_t requiredInteger(const std::string& key) const;
  std::optional<double> number(const std::string& key) const;
  double requiredNumber(const std::string& key) const;
  std::optional<bool> boolean(const std::string& key) const;
  std::optional<std::string> string(const std::string& key) const;
  std::string requiredString(const std::string& key) const;
  // A list of strings; empty when absent or null.
  std::vector<std::string> stringList(const std::string& key) const;
  // An integer or a list of integers (eos_token_id); absent gives {ifAbsent} when set, null gives {}.
  std::vector<int64_t> integerList(const std::string& key, std::optional<int64_t> ifAbsent) const;
  // A nested object, or nullopt when absent or null.
  std::optional<ConfigFields> object(const std::string& key) const;

 private:
  const nlohmann::json* find(const std::string& key) const;  // nullptr for absent or null
  [[noreturn]] void wrongType(const std::string& key, const char* expected,
                              const nlohmann::json& found) const;
  int64_t toInteger(const std::string& key, const nlohmann::json& v) const;

  nlohmann::json object_;
  std::string path_, prefix_;
};

}  // namespace hs
