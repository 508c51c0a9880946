// Minimal edit of a serialized SentencePiece ModelProto (Debian ships no sentencepiece_model.pb.h).
#pragma once

#include <string>

namespace hs::tok {

// The same model with normalizer_spec.add_dummy_prefix = false, so that text which follows a
// special token is encoded without the "▁" SentencePiece would prepend (transformers'
// Metaspace prepend_scheme "first"). Corrupt naming `file` when the bytes are not a protobuf.
std::string withoutDummyPrefix(const std::string& serialized, const std::string& file);

}  // namespace hs::tok
