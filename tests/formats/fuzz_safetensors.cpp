// libFuzzer target: arbitrary bytes as a safetensors file image, and as a config.json text.
// A typed hs::Error is the expected outcome for bad input; any other exception, abort, sanitizer
// report or timeout is a finding. Build: cmake -DHEADSCOPE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++,
// run: fuzz_safetensors -max_len=4096 corpus/
#include <cstddef>
#include <cstdint>
#include <string>

#include "inference/formats/model_config.h"
#include "inference/formats/safetensors.h"
#include "kernels/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    hs::checkSafetensorsBytes(reinterpret_cast<const std::byte*>(data), size, "fuzz.safetensors");
  } catch (const hs::Error&) {
  }
  try {
    hs::parseModelConfig(std::string(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
  } catch (const hs::Error&) {
  }
  return 0;
}
