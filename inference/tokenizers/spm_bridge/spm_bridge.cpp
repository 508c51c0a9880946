// The SentencePiece bridge module: the only code that links libsentencepiece (see spm_bridge.h).
#include "inference/tokenizers/spm_bridge/spm_bridge.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

struct hs_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {
char* copyString(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}
}  // namespace

extern "C" {

hs_spm* hs_spm_load(const char* path, char** error) {
  auto* sp = new (std::nothrow) hs_spm;
  if (!sp) return nullptr;
  const auto status = sp->processor.Load(path);
  if (!status.ok()) {
    if (error) *error = copyString(status.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

hs_spm* hs_spm_load_serialized(const char* bytes, size_t len, char** error) {
  auto* sp = new (std::nothrow) hs_spm;
  if (!sp) return nullptr;
  const auto status = sp->processor.LoadFromSerializedProto(std::string(bytes, len));
  if (!status.ok()) {
    if (error) *error = copyString(status.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

void hs_spm_free(hs_spm* sp) {
  delete sp;
}

int hs_spm_piece_size(const hs_spm* sp) {
  return sp->processor.GetPieceSize();
}

int hs_spm_piece_to_id(const hs_spm* sp, const char* piece, size_t len) {
  return sp->processor.PieceToId(std::string(piece, len));
}

char* hs_spm_id_to_piece(const hs_spm* sp, int id) {
  return copyString(sp->processor.IdToPiece(id));
}

int hs_spm_flags(const hs_spm* sp, int id) {
  const auto& p = sp->processor;
  return (p.IsControl(id) ? HS_SPM_CONTROL : 0) | (p.IsUnknown(id) ? HS_SPM_UNKNOWN : 0) |
         (p.IsByte(id) ? HS_SPM_BYTE : 0) | (p.IsUnused(id) ? HS_SPM_UNUSED : 0);
}

int hs_spm_special_id(const hs_spm* sp, int which) {
  switch (which) {
    case HS_SPM_UNK_ID:
      return sp->processor.unk_id();
    case HS_SPM_BOS_ID:
      return sp->processor.bos_id();
    case HS_SPM_EOS_ID:
      return sp->processor.eos_id();
    case HS_SPM_PAD_ID:
      return sp->processor.pad_id();
    default:
      return -1;
  }
}

int hs_spm_encode(const hs_spm* sp, const char* text, size_t len, int** ids, size_t* count, char** error) {
  std::vector<int> out;
  const auto status = sp->processor.Encode(std::string(text, len), &out);
  if (!status.ok()) {
    if (error) *error = copyString(status.ToString());
    return -1;
  }
  *count = out.size();
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(1, out.size()) * sizeof(int)));
  if (!*ids) return -1;
  if (!out.empty()) std::memcpy(*ids, out.data(), out.size() * sizeof(int));
  return 0;
}

int hs_spm_decode(const hs_spm* sp, const int* ids, size_t count, char** text, size_t* len, char** error) {
  std::string out;
  const auto status = sp->processor.Decode(std::vector<int>(ids, ids + count), &out);
  if (!status.ok()) {
    if (error) *error = copyString(status.ToString());
    return -1;
  }
  *len = out.size();
  *text = copyString(out);
  return *text ? 0 : -1;
}

void hs_spm_release(void* p) {
  std::free(p);
}

}  // extern "C"
