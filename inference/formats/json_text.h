// JSON parsing for config.json and model.safetensors.index.json with errors that point at the spot.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hs {

// Parses `text`; on a syntax error throws Corrupt naming `path` with the line, column and byte
// offset of the last character read, i.e. the end of the offending token (1-based line/column).
// Empty files, HTML error pages and Git LFS pointers get a hint about a failed download.
nlohmann::json parseJsonText(const std::string& text, const std::string& path);

}  // namespace hs
