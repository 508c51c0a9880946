#include "inference/tokenizers/sentencepiece_proto.h"

#include <fmt/format.h>

#include <cstdint>

#include "kernels/core/error.h"

namespace hs::tok {
namespace {

// ModelProto.normalizer_spec is field 3; NormalizerSpec.add_dummy_prefix is field 3 (bool).
constexpr uint64_t kNormalizerSpecField = 3;
constexpr uint64_t kAddDummyPrefixField = 3;

struct WireReader {
  const std::string& bytes;
  size_t pos;
  size_t end;
  const std::string& file;

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= end)
        throw Error(ErrorKind::Corrupt, fmt::format("protobuf varint runs past byte {}", end), file);
      const auto b = static_cast<unsigned char>(bytes[pos++]);
      value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return value;
    }
    throw Error(ErrorKind::Corrupt, fmt::format("protobuf varint longer than 10 bytes at byte {}", pos),
                file);
  }

  // Skips the value of a field with wire type `wire`; returns [start, end) of a length-delimited payload.
  std::pair<size_t, size_t> skip(uint64_t wire) {
    size_t n = 0;
    switch (wire) {
      case 0:
        varint();
        return {pos, pos};
      case 1:
        n = 8;
        break;
      case 5:
        n = 4;
        break;
      case 2: {
        const uint64_t len = varint();
        if (len > end - pos) {
          throw Error(ErrorKind::Corrupt, fmt::format("protobuf field of {} bytes runs past the end", len),
                      file);
        }
        n = static_cast<size_t>(len);
        break;
      }
      default:
        throw Error(ErrorKind::Corrupt, fmt::format("protobuf wire type {} at byte {}", wire, pos), file);
    }
    if (n > end - pos) throw Error(ErrorKind::Corrupt, "protobuf field runs past the end", file);
    const size_t start = pos;
    pos += n;
    return {start, pos};
  }
};

void appendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

}  // namespace

std::string withoutDummyPrefix(const std::string& serialized, const std::string& file) {
  std::string out;
  out.reserve(serialized.size() + 4);
  WireReader top{serialized, 0, serialized.size(), file};
  bool sawSpec = false;
  while (top.pos < top.end) {
    const size_t fieldStart = top.pos;
    const uint64_t key = top.varint();
    const auto [payloadStart, payloadEnd] = top.skip(key & 7);
    if ((key >> 3) != kNormalizerSpecField || (key & 7) != 2) {
      out.append(serialized, fieldStart, top.pos - fieldStart);
      continue;
    }
    sawSpec = true;
    std::string spec;
    WireReader inner{serialized, payloadStart, payloadEnd, file};
    while (inner.pos < inner.end) {
      const size_t subStart = inner.pos;
      const uint64_t subKey = inner.varint();
      inner.skip(subKey & 7);
      if ((subKey >> 3) != kAddDummyPrefixField) spec.append(serialized, subStart, inner.pos - subStart);
    }
    appendVarint(spec, (kAddDummyPrefixField << 3) | 0);
    spec += '\0';
    appendVarint(out, key);
    appendVarint(out, spec.size());
    out += spec;
  }
  if (!sawSpec) {
    // No normalizer_spec means the defaults, add_dummy_prefix = true: add one that turns it off.
    appendVarint(out, (kNormalizerSpecField << 3) | 2);
    appendVarint(out, 2);
    appendVarint(out, (kAddDummyPrefixField << 3) | 0);
    out += '\0';
  }
  return out;
}

}  // namespace hs::tok
