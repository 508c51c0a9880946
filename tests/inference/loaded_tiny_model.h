// A tiny model (tests/inference/tiny_model.h) written to a scratch directory and loaded by
// hs::Model without a tokenizer: the setup that most model tests share.
#pragma once

#include <memory>
#include <utility>

#include "inference/models/model.h"
#include "tests/inference/tiny_model.h"

namespace hs::test {

struct LoadedTinyModel {
  TinySpec spec;
  Weights weights;
  ScratchDir dir;
  std::unique_ptr<Model> model;

  explicit LoadedTinyModel(TinySpec s) : spec(std::move(s)), weights(randomWeights(spec)) {
    writeTinyModel(dir.path(), spec, weights);
    LoadOptions o;
    o.loadTokenizer = false;
    model = Model::load(dir.path(), o);
  }
};

}  // namespace hs::test
