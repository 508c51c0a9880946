// Include this instead of a Catch2 header: it works with Catch2 v2 (Debian 12) and v3 (CUDA host).
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <string>

namespace hs::test {
// Absolute path of a file under tests/fixtures/.
inline std::string fixture(const std::string& rel) { return std::string(HS_FIXTURES_DIR) + "/" + rel; }
}  // namespace hs::test
