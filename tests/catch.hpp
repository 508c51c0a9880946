// Include this instead of a Catch2 header: it works with Catch2 v2 (Debian 12) and v3 (CUDA host).
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

namespace hs::test {
// Matcher for "string contains fragment" under both Catch2 majors (v3 renamed it).
#if __has_include(<catch2/catch_all.hpp>)
inline auto HasSubstring(const std::string& s) { return Catch::Matchers::ContainsSubstring(s); }
#else
inline auto HasSubstring(const std::string& s) { return Catch::Matchers::Contains(s); }
#endif

// Absolute path of a file under tests/fixtures/.
inline std::string fixture(const std::string& rel) { return std::string(HS_FIXTURES_DIR) + "/" + rel; }
}  // namespace hs::test
