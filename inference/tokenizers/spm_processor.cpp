#include "inference/tokenizers/spm_processor.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "inference/tokenizers/spm_bridge/spm_bridge.h"
#include "kernels/core/error.h"

namespace hs::tok {

namespace {

// RTLD_DEEPBIND keeps the bridge's protobuf apart from LibTorch's; AddressSanitizer refuses it
// (google/sanitizers#611), and sanitized builds are only the torch-free test executables.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

// The bridge's entry points, resolved once per process.
struct Bridge {
  decltype(&hs_spm_load) load;
  decltype(&hs_spm_load_serialized) loadSerialized;
  decltype(&hs_spm_free) free;
  decltype(&hs_spm_piece_size) pieceSize;
  decltype(&hs_spm_piece_to_id) pieceToId;
  decltype(&hs_spm_id_to_piece) idToPiece;
  decltype(&hs_spm_flags) flags;
  decltype(&hs_spm_special_id) specialId;
  decltype(&hs_spm_encode) encode;
  decltype(&hs_spm_decode) decode;
  decltype(&hs_spm_release) release;
};

std::vector<std::string> candidatePaths() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("HEADSCOPE_SPM_BRIDGE")) paths.emplace_back(env);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path() / "libheadscope_spm.so").string());
    paths.push_back((exe.parent_path() / "../lib/libheadscope_spm.so").string());
  }
#ifdef HS_SPM_BRIDGE_PATH
  paths.emplace_back(HS_SPM_BRIDGE_PATH);
#endif
  return paths;
}

const Bridge& bridge() {
  static std::once_flag once;
  static Bridge b{};
  static std::string failure;
  std::call_once(once, [] {
    void* handle = nullptr;
    std::string tried;
    for (const auto& p : candidatePaths()) {
      if (!std::filesystem::exists(p)) continue;
      handle = dlopen(p.c_str(), kDlopenFlags);
      if (handle) break;
      tried += std::string(" ") + p + " (" + dlerror() + ")";
    }
    if (!handle) {
      failure = "cannot load the SentencePiece bridge libheadscope_spm.so" +
                (tried.empty() ? " (not found)" : tried) + "; set HEADSCOPE_SPM_BRIDGE to its path";
      return;
    }
    auto sym = [&](const char* name) {
      void* s = dlsym(handle, name);
      if (!s) failure = std::string("SentencePiece bridge lacks ") + name;
      return s;
    };
    b.load = reinterpret_cast<decltype(b.load)>(sym("hs_spm_load"));
    b.loadSerialized = reinterpret_cast<decltype(b.loadSerialized)>(sym("hs_spm_load_serialized"));
    b.free = reinterpret_cast<decltype(b.free)>(sym("hs_spm_free"));
    b.pieceSize = reinterpret_cast<decltype(b.pieceSize)>(sym("hs_spm_piece_size"));
    b.pieceToId = reinterpret_cast<decltype(b.pieceToId)>(sym("hs_spm_piece_to_id"));
    b.idToPiece = reinterpret_cast<decltype(b.idToPiece)>(sym("hs_spm_id_to_piece"));
    b.flags = reinterpret_cast<decltype(b.flags)>(sym("hs_spm_flags"));
    b.specialId = reinterpret_cast<decltype(b.specialId)>(sym("hs_spm_special_id"));
    b.encode = reinterpret_cast<decltype(b.encode)>(sym("hs_spm_encode"));
    b.decode = reinterpret_cast<decltype(b.decode)>(sym("hs_spm_decode"));
    b.release = reinterpret_cast<decltype(b.release)>(sym("hs_spm_release"));
  });
  check(failure.empty(), ErrorKind::Io, failure);
  return b;
}

std::string takeString(const Bridge& b, char* s) {
  std::string out = s ? s : "";
  b.release(s);
  return out;
}

}  // namespace

std::unique_ptr<SpmProcessor> SpmProcessor::load(const std::string& path, std::string* error) {
  const Bridge& b = bridge();
  char* err = nullptr;
  hs_spm* sp = b.load(path.c_str(), &err);
  if (!sp) {
    if (error) *error = takeString(b, err);
    return nullptr;
  }
  return std::unique_ptr<SpmProcessor>(new SpmProcessor(sp));
}

std::unique_ptr<SpmProcessor> SpmProcessor::loadSerialized(const std::string& bytes, std::string* error) {
  const Bridge& b = bridge();
  char* err = nullptr;
  hs_spm* sp = b.loadSerialized(bytes.data(), bytes.size(), &err);
  if (!sp) {
    if (error) *error = takeString(b, err);
    return nullptr;
  }
  return std::unique_ptr<SpmProcessor>(new SpmProcessor(sp));
}

SpmProcessor::~SpmProcessor() {
  bridge().free(sp_);
}
int SpmProcessor::GetPieceSize() const {
  return bridge().pieceSize(sp_);
}
int SpmProcessor::PieceToId(const std::string& piece) const {
  return bridge().pieceToId(sp_, piece.data(), piece.size());
}
std::string SpmProcessor::IdToPiece(int id) const {
  return takeString(bridge(), bridge().idToPiece(sp_, id));
}
bool SpmProcessor::IsControl(int id) const {
  return bridge().flags(sp_, id) & HS_SPM_CONTROL;
}
bool SpmProcessor::IsUnknown(int id) const {
  return bridge().flags(sp_, id) & HS_SPM_UNKNOWN;
}
bool SpmProcessor::IsByte(int id) const {
  return bridge().flags(sp_, id) & HS_SPM_BYTE;
}
int SpmProcessor::unk_id() const {
  return bridge().specialId(sp_, HS_SPM_UNK_ID);
}
int SpmProcessor::bos_id() const {
  return bridge().specialId(sp_, HS_SPM_BOS_ID);
}
int SpmProcessor::eos_id() const {
  return bridge().specialId(sp_, HS_SPM_EOS_ID);
}

bool SpmProcessor::Encode(const std::string& text, std::vector<int>* ids, std::string* error) const {
  const Bridge& b = bridge();
  int* out = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (b.encode(sp_, text.data(), text.size(), &out, &n, &err) != 0) {
    if (error) *error = takeString(b, err);
    return false;
  }
  ids->assign(out, out + n);
  b.release(out);
  return true;
}

bool SpmProcessor::Decode(const std::vector<int>& ids, std::string* text, std::string* error) const {
  const Bridge& b = bridge();
  char* out = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (b.decode(sp_, ids.data(), ids.size(), &out, &n, &err) != 0) {
    if (error) *error = takeString(b, err);
    return false;
  }
  text->assign(out, n);
  b.release(out);
  return true;
}

}  // namespace hs::tok
