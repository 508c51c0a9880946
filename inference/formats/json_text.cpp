#include "inference/formats/json_text.h"

#include <fmt/format.h>

#include <algorithm>

#include "kernels/core/error.h"

namespace hs {

namespace {
// What a file that should be JSON looks like when a download went wrong.
std::string downloadHint(const std::string& text) {
  if (text.empty()) return " (the file is empty: incomplete download?)";
  if (text.rfind("version https://git-lfs", 0) == 0)
    return " (this is a Git LFS pointer, not the file itself)";
  const std::string head = text.substr(0, 64);
  if (head.find("<!DOCTYPE") != std::string::npos || head.find("<html") != std::string::npos)
    return " (this is an HTML page: a failed download?)";
  return {};
}
}  // namespace

nlohmann::json parseJsonText(const std::string& text, const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const std::size_t offset = std::min(e.byte > 0 ? e.byte - 1 : 0, text.size());
    const std::size_t line =
        1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
    const std::size_t lineStart = text.rfind('\n', offset == 0 ? 0 : offset - 1);
    const std::size_t column =
        offset - (lineStart == std::string::npos || offset == 0 ? 0 : lineStart + 1) + 1;
    throw Error(ErrorKind::Corrupt,
                fmt::format("invalid JSON at line {}, column {} (byte offset {}): {}{}", line, column, offset,
                            e.what(), downloadHint(text)),
                path);
  } catch (const nlohmann::json::exception& e) {
    // out_of_range 406: a number literal such as 1e999 that overflows a double.
    throw Error(ErrorKind::Corrupt, fmt::format("invalid JSON: {}{}", e.what(), downloadHint(text)), path);
  }
}

}  // namespace hs
