// A Hugging Face model directory's weights: model.safetensors or sharded safetensors with
// model.safetensors.index.json. Pickle checkpoints are refused.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "inference/formats/safetensors.h"

namespace hs {

// All weight files of a model directory, mapped. Lookups by tensor name across shards.
class Checkpoint {
 public:
  // Opens DIR/model.safetensors or DIR/model.safetensors.index.json and every shard it names.
  // Fails (naming files/tensors) on: no weights at all, pickle-only weights (with a conversion
  // hint), missing shards, index entries absent from their shard, a tensor in two shards.
  // Stray *.safetensors files not named by the index are ignored, with a warning in warnings().
  static Checkpoint open(const std::string& modelDir);

  const TensorView* find(const std::string& name) const;
  // Names of every tensor, sorted.
  std::vector<std::string> names() const;
  // Sum of the tensors' stored bytes.
  std::size_t totalBytes() const;
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<const TensorView*> byName_;  // sorted by name
  std::vector<std::string> warnings_;
};

}  // namespace hs
