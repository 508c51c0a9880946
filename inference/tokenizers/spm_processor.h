// SentencePiece through the bridge module (spm_bridge/spm_bridge.h says why it is a module).
#pragma once

#include <memory>
#include <string>
#include <vector>

struct hs_spm;

namespace hs::tok {

// The subset of sentencepiece::SentencePieceProcessor HeadScope uses, same names and meaning.
class SpmProcessor {
 public:
  // Loads a .model file; nullptr with *error set when SentencePiece rejects it. Throws hs::Error
  // (Io) when the bridge module itself cannot be loaded.
  static std::unique_ptr<SpmProcessor> load(const std::string& path, std::string* error);
  // Same from the bytes of a serialized model.
  static std::unique_ptr<SpmProcessor> loadSerialized(const std::string& bytes, std::string* error);
  ~SpmProcessor();
  SpmProcessor(const SpmProcessor&) = delete;
  SpmProcessor& operator=(const SpmProcessor&) = delete;

  int GetPieceSize() const;
  int PieceToId(const std::string& piece) const;
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  int unk_id() const;
  int bos_id() const;
  int eos_id() const;
  // Encode/decode; false with *error set on failure.
  bool Encode(const std::string& text, std::vector<int>* ids, std::string* error) const;
  bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const;

 private:
  explicit SpmProcessor(hs_spm* sp) : sp_(sp) {}
  hs_spm* sp_;
};

}  // namespace hs::tok
