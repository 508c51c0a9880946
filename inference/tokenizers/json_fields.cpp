#include "inference/tokenizers/json_fields.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "kernels/core/error.h"

namespace hs::tok {

std::string shortJson(const nlohmann::json& value) {
  std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

namespace {

// The first bytes of a file as a printable, escaped excerpt for error messages.
std::string firstBytes(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 60; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (bytes.size() > 60) out += "...";
  return out;
}

const char* const kDownloadHint =
    "re-download it (an HTML or '404' error page, or a Git LFS pointer: run `git lfs pull`, saved in its "
    "place?)";

}  // namespace

nlohmann::json readJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), ErrorKind::Io, "cannot open file for reading", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  check(!in.bad(), ErrorKind::Io, "read failed", path);
  const std::string bytes = buffer.str();
  if (bytes.empty()) throw Error(ErrorKind::Corrupt, fmt::format("file is empty; {}", kDownloadHint), path);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorKind::Corrupt,
                fmt::format("not valid JSON ({}); file starts with \"{}\"; {}", e.what(), firstBytes(bytes),
                            kDownloadHint),
                path);
  }
  if (!root.is_object())
    throw Error(
        ErrorKind::Corrupt,
        fmt::format("expected a JSON object, file starts with \"{}\"; {}", firstBytes(bytes), kDownloadHint),
        path);
  return root;
}

std::string requireString(const nlohmann::json& spec, const char* key, const std::string& file,
                          const std::string& field) {
  const auto it = spec.find(key);
  if (it == spec.end())
    throw Error(ErrorKind::Corrupt, fmt::format("missing required key '{}'", key), file, field);
  if (!it->is_string())
    throw Error(ErrorKind::Corrupt, fmt::format("'{}' must be a string, found {}", key, shortJson(*it)), file,
                field);
  return it->get<std::string>();
}

bool optionalBool(const nlohmann::json& spec, const char* key, bool fallback, const std::string& file,
                  const std::string& field) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw Error(ErrorKind::Corrupt, fmt::format("'{}' must be true or false, found {}", key, shortJson(*it)),
                file, field);
  return it->get<bool>();
}

std::string optionalString(const nlohmann::json& spec, const char* key, const std::string& fallback,
                           const std::string& file, const std::string& field) {
  const auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  if (!it->is_string())
    throw Error(ErrorKind::Corrupt, fmt::format("'{}' must be a string, found {}", key, shortJson(*it)), file,
                field);
  return it->get<std::string>();
}

std::string componentType(const nlohmann::json& spec, const std::string& file, const std::string& field) {
  if (!spec.is_object())
    throw Error(ErrorKind::Corrupt, fmt::format("expected an object, found {}", shortJson(spec)), file,
                field);
  return requireString(spec, "type", file, field);
}

}  // namespace hs::tok
