// JSON parsing for config.json and model.safetensors.index.json with errors that point at the spot.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace hs {

// Parses `text`; on a syntax error throws Corrupt naming `path` with line, column and byte offset.
// Empty files, HTML error pages and Git LFS pointers get a hint about a failed download.
nlohmann::json parseJsonText(const std::string& text, const std::string& path);

}  // namespace hs
