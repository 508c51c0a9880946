#include "inference/formats/config_fields.h"

#include <fmt/format.h>

#include "kernels/core/error.h"

namespace hs {

using json = nlohmann::json;

ConfigFields::ConfigFields(json object, std::string path, std::string prefix)
    : object_(std::move(object)), path_(std::move(path)), prefix_(std::move(prefix)) {}

std::string ConfigFields::field(const std::string& key) const {
  return prefix_.empty() ? key : prefix_ + "." + key;
}

const json* ConfigFields::find(const std::string& key) const {
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  return it == object_.end() || it->is_null() ? nullptr : &*it;
}

void ConfigFields::wrongType(const std::string& key, const char* expected, const json& found) const {
  std::string text = found.dump();
  if (text.size() > 60) text = text.substr(0, 60) + "...";
  throw Error(ErrorKind::Corrupt,
              fmt::format("expected {}, found {} ({})", expected, text, found.type_name()), path_,
              field(key));
}

int64_t ConfigFields::toInteger(const std::string& key, const json& v) const {
  // Floats are refused even when integral (32.0): transformers 5's strict config classes refuse them.
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    return v.get<int64_t>();
  }
  wrongType(key, "an integer", v);
}

std::optional<int64_t> ConfigFields::integer(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  return toInteger(key, *v);
}

std::optional<int64_t> ConfigFields::integerOr(const std::string& key,
                                               std::optional<int64_t> ifAbsent) const {
  if (!object_.contains(key)) return ifAbsent;
  return integer(key);
}

int64_t ConfigFields::requiredInteger(const std::string& key) const {
  if (!find(key)) throw Error(ErrorKind::Corrupt, "required key is missing (or null)", path_, field(key));
  return *integer(key);
}

std::optional<double> ConfigFields::number(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrongType(key, "a number", *v);
  return v->get<double>();
}

double ConfigFields::requiredNumber(const std::string& key) const {
  if (!find(key)) throw Error(ErrorKind::Corrupt, "required key is missing (or null)", path_, field(key));
  return *number(key);
}

std::optional<bool> ConfigFields::boolean(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrongType(key, "true or false", *v);
  return v->get<bool>();
}

std::optional<std::string> ConfigFields::string(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrongType(key, "a string", *v);
  return v->get<std::string>();
}

std::string ConfigFields::requiredString(const std::string& key) const {
  if (!find(key)) throw Error(ErrorKind::Corrupt, "required key is missing (or null)", path_, field(key));
  return *string(key);
}

std::vector<std::string> ConfigFields::stringList(const std::string& key) const {
  std::vector<std::string> out;
  const json* v = find(key);
  if (!v) return out;
  if (!v->is_array()) wrongType(key, "a list of strings", *v);
  for (std::size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) wrongType(fmt::format("{}[{}]", key, i), "a string", (*v)[i]);
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

std::vector<int64_t> ConfigFields::integerList(const std::string& key,
                                               std::optional<int64_t> ifAbsent) const {
  std::vector<int64_t> out;
  if (!object_.contains(key)) {
    if (ifAbsent) out.push_back(*ifAbsent);
    return out;
  }
  const json* v = find(key);
  if (!v) return out;
  if (!v->is_array()) {
    out.push_back(toInteger(key, *v));
    return out;
  }
  for (std::size_t i = 0; i < v->size(); ++i)
    out.push_back(toInteger(fmt::format("{}[{}]", key, i), (*v)[i]));
  return out;
}

std::optional<ConfigFields> ConfigFields::object(const std::string& key) const {
  const json* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_object()) wrongType(key, "an object", *v);
  return ConfigFields(*v, path_, field(key));
}

}  // namespace hs
