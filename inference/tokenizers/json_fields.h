// Typed access to tokenizer JSON fields, with errors naming the file and field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hs::tok {

// The string at spec[key]; Corrupt naming `field` when it is missing or not a string.
std::string requireString(const nlohmann::json& spec, const char* key, const std::string& file,
                          const std::string& field);
// spec[key] as a bool, `fallback` when absent or null; Corrupt when of another type.
bool optionalBool(const nlohmann::json& spec, const char* key, bool fallback, const std::string& file,
                  const std::string& field);
// spec[key] as a string, `fallback` when absent or null; Corrupt when of another type.
std::string optionalString(const nlohmann::json& spec, const char* key, const std::string& fallback,
                           const std::string& file, const std::string& field);
// The "type" of a component object; Corrupt when it is not an object with a string type.
std::string componentType(const nlohmann::json& spec, const std::string& file, const std::string& field);
// Parses a JSON file. Io when it cannot be read; Corrupt (showing the first bytes and a download
// hint) when it is empty or not JSON, e.g. an HTML error page or a Git LFS pointer.
nlohmann::json readJsonFile(const std::string& path);
// Short printable rendering of a JSON value for messages (at most ~80 characters).
std::string shortJson(const nlohmann::json& value);

}  // namespace hs::tok
