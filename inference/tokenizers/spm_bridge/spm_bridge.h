// C ABI of the SentencePiece bridge module (libheadscope_spm.so).
//
// Why a module: Debian's libsentencepiece embeds its own protobuf-lite and exports its symbols;
// Debian's LibTorch loads the system libprotobuf. Linked into one executable they interpose each
// other's symbols and the process crashes before main. The bridge links sentencepiece alone and is
// dlopen'ed with RTLD_LOCAL | RTLD_DEEPBIND, so each library keeps its own protobuf.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hs_spm hs_spm;

enum { HS_SPM_CONTROL = 1, HS_SPM_UNKNOWN = 2, HS_SPM_BYTE = 4, HS_SPM_UNUSED = 8 };
enum { HS_SPM_UNK_ID = 0, HS_SPM_BOS_ID = 1, HS_SPM_EOS_ID = 2, HS_SPM_PAD_ID = 3 };

// Loads a .model file; on failure returns NULL and sets *error (free with hs_spm_release).
hs_spm* hs_spm_load(const char* path, char** error);
// Same from the bytes of a serialized ModelProto.
hs_spm* hs_spm_load_serialized(const char* bytes, size_t len, char** error);
void hs_spm_free(hs_spm* sp);
int hs_spm_piece_size(const hs_spm* sp);
int hs_spm_piece_to_id(const hs_spm* sp, const char* piece, size_t len);
// Piece text of an id as a malloc'ed NUL-terminated string (free with hs_spm_release).
char* hs_spm_id_to_piece(const hs_spm* sp, int id);
// HS_SPM_* flags of an id.
int hs_spm_flags(const hs_spm* sp, int id);
// unk/bos/eos/pad id (HS_SPM_*_ID), -1 when the model has none.
int hs_spm_special_id(const hs_spm* sp, int which);
// Encodes UTF-8 text; *ids is malloc'ed. Returns 0, or -1 with *error set.
int hs_spm_encode(const hs_spm* sp, const char* text, size_t len, int** ids, size_t* count, char** error);
// Decodes ids into malloc'ed UTF-8 *text of *len bytes. Returns 0, or -1 with *error set.
int hs_spm_decode(const hs_spm* sp, const int* ids, size_t count, char** text, size_t* len, char** error);
void hs_spm_release(void* p);

#ifdef __cplusplus
}
#endif
