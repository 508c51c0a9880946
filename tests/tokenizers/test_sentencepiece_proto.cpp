// The ModelProto edit that switches off add_dummy_prefix, on hand-written protobuf bytes.
#include "inference/tokenizers/sentencepiece_proto.h"
#include "kernels/core/error.h"
#include "tests/catch.hpp"

using hs::tok::withoutDummyPrefix;

TEST_CASE("add_dummy_prefix is replaced by false and everything else kept", "[sentencepiece_proto]") {
  // Field 1 (a piece message of 2 bytes), then normalizer_spec (field 3) holding name "x" (field 1)
  // and add_dummy_prefix = true (field 3, varint 1).
  const std::string in = std::string("\x0A\x02\x08\x01", 4) + std::string("\x1A\x05\x0A\x01x\x18\x01", 7);
  const std::string out = std::string("\x0A\x02\x08\x01", 4) + std::string("\x1A\x05\x0A\x01x\x18\x00", 7);
  CHECK(withoutDummyPrefix(in, "m.model") == out);
  // No normalizer_spec at all: one is appended with add_dummy_prefix = false.
  CHECK(withoutDummyPrefix(std::string("\x0A\x02\x08\x01", 4), "m.model") ==
        std::string("\x0A\x02\x08\x01\x1A\x02\x18\x00", 8));
}

TEST_CASE("malformed protobuf bytes are Corrupt naming the file", "[sentencepiece_proto]") {
  const std::vector<std::string> rows = {
      std::string("\x0A\xFF", 2),      // length runs past the end
      std::string("\x0B", 1),          // wire type 3 (group)
      std::string("\x08\x80\x80", 3),  // unterminated varint
      std::string("\x1A\x03\x18", 3),  // normalizer_spec longer than the file
  };
  for (const auto& bytes : rows) {
    try {
      withoutDummyPrefix(bytes, "m.model");
      FAIL("accepted");
    } catch (const hs::Error& e) {
      CHECK(e.kind() == hs::ErrorKind::Corrupt);
      CHECK(e.file() == "m.model");
    }
  }
}
