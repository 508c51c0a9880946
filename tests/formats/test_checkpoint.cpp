#include <cstring>
#include <filesystem>

#include "inference/formats/checkpoint.h"
#include "tests/formats/scratch_dir.h"

using hs::DType;
using hs::ErrorKind;
using hs::test::requireError;
using hs::test::ScratchDir;
using hs::test::writeBytes;

namespace {

// A U8 tensor of `n` bytes all equal to `fill`, so each tensor's bytes identify it.
hs::TensorToWrite u8(const std::string& name, std::size_t n, unsigned char fill) {
  return {name, DType::U8, {static_cast<int64_t>(n)}, std::vector<std::byte>(n, std::byte{fill})};
}

std::string indexJson(const std::vector<std::pair<std::string, std::string>>& map) {
  std::string out = R"({"metadata":{"total_size":0},"weight_map":{)";
  for (std::size_t i = 0; i < map.size(); ++i)
    out += (i ? "," : "") + ("\"" + map[i].first + "\":\"" + map[i].second + "\"");
  return out + "}}";
}

// The shard layout of a two-file checkpoint as transformers writes it.
void writeSharded(const ScratchDir& dir) {
  hs::writeSafetensors(dir.file("model-00001-of-00002.safetensors"), {u8("embed", 4, 1), u8("layer0", 2, 2)});
  hs::writeSafetensors(dir.file("model-00002-of-00002.safetensors"), {u8("layer1", 3, 3), u8("norm", 1, 4)});
  writeBytes(dir.file("model.safetensors.index.json"),
             indexJson({{"embed", "model-00001-of-00002.safetensors"},
                        {"layer0", "model-00001-of-00002.safetensors"},
                        {"layer1", "model-00002-of-00002.safetensors"},
                        {"norm", "model-00002-of-00002.safetensors"}}));
}

}  // namespace

TEST_CASE("checkpoint: a single model.safetensors", "[formats][checkpoint]") {
  ScratchDir dir;
  hs::writeSafetensors(dir.file("model.safetensors"), {u8("b", 2, 7), u8("a", 5, 8)});
  const auto ck = hs::Checkpoint::open(dir.path());
  CHECK(ck.dir() == dir.path());
  CHECK(ck.names() == std::vector<std::string>{"a", "b"});
  CHECK(ck.totalBytes() == 7);
  REQUIRE(ck.find("a"));
  CHECK(ck.find("a")->nbytes == 5);
  CHECK(static_cast<unsigned char>(ck.find("a")->data[0]) == 8);
  CHECK(ck.find("c") == nullptr);
  CHECK(ck.warnings().empty());
}

TEST_CASE("checkpoint: a sharded checkpoint with an index", "[formats][checkpoint]") {
  ScratchDir dir;
  writeSharded(dir);
  auto ck = hs::Checkpoint::open(dir.path());
  CHECK(ck.names() == std::vector<std::string>{"embed", "layer0", "layer1", "norm"});
  CHECK(ck.totalBytes() == 10);
  REQUIRE(ck.find("layer1"));
  CHECK(ck.find("layer1")->file == dir.file("model-00002-of-00002.safetensors"));
  CHECK(static_cast<unsigned char>(ck.find("layer1")->data[2]) == 3);
  CHECK(static_cast<unsigned char>(ck.find("norm")->data[0]) == 4);
  CHECK(ck.warnings().empty());
  // Moving the checkpoint keeps its views valid (the mapped files are shared).
  const hs::Checkpoint moved = std::move(ck);
  CHECK(static_cast<unsigned char>(moved.find("embed")->data[3]) == 1);
}

TEST_CASE("checkpoint: stray safetensors files beside the index are ignored with a warning",
          "[formats][checkpoint]") {
  ScratchDir dir;
  writeSharded(dir);
  // A quantized copy next to the shards (mlx-vlm#1464) must not be merged in.
  hs::writeSafetensors(dir.file("model.safetensors"), {u8("embed", 4, 9), u8("extra", 1, 9)});
  hs::writeSafetensors(dir.file("consolidated.safetensors"), {u8("embed", 4, 9)});
  const auto ck = hs::Checkpoint::open(dir.path());
  CHECK(ck.names() == std::vector<std::string>{"embed", "layer0", "layer1", "norm"});
  CHECK(static_cast<unsigned char>(ck.find("embed")->data[0]) == 1);
  REQUIRE(ck.warnings().size() == 2);
  CHECK(ck.warnings()[0].find("consolidated.safetensors") != std::string::npos);
  CHECK(ck.warnings()[1].find("model.safetensors") != std::string::npos);
  CHECK(ck.warnings()[1].find("ignored") != std::string::npos);
}

TEST_CASE("checkpoint: a single .safetensors file path opens directly", "[formats][checkpoint]") {
  ScratchDir dir;
  hs::writeSafetensors(dir.file("weights.safetensors"), {u8("a", 1, 1)});
  CHECK(hs::Checkpoint::open(dir.file("weights.safetensors")).names() == std::vector<std::string>{"a"});
}

TEST_CASE("checkpoint: broken model directories fail naming files and tensors", "[formats][checkpoint]") {
  using Setup = void (*)(const ScratchDir&);
  struct Row {
    const char* what;
    Setup setup;
    ErrorKind kind;
    std::vector<std::string> fragments;
  };
  const std::vector<Row> rows = {
      {"empty directory", [](const ScratchDir&) {}, ErrorKind::Io, {"no weights found", "model.safetensors"}},
      {"pickle only",
       [](const ScratchDir& d) { writeBytes(d.file("pytorch_model.bin"), "PK\x03\x04"); },
       ErrorKind::Unsupported,
       {"pytorch_model.bin", "pickle checkpoints can run arbitrary code and are not loaded",
        "save_pretrained('OUT', safe_serialization=True)", "from_pretrained('"}},
      {"pt and ckpt",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.pt"), "x");
         writeBytes(d.file("last.ckpt"), "x");
       },
       ErrorKind::Unsupported,
       {"last.ckpt", "model.pt", "pickle"}},
      {"shards without an index",
       [](const ScratchDir& d) {
         hs::writeSafetensors(d.file("model-00001-of-00002.safetensors"), {u8("a", 1, 1)});
       },
       ErrorKind::Io,
       {"model-00001-of-00002.safetensors", "model.safetensors.index.json"}},
      {"index names missing shards",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"),
                    indexJson({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}, {"c", "s3.safetensors"}}));
         hs::writeSafetensors(d.file("s2.safetensors"), {u8("b", 1, 1)});
       },
       ErrorKind::Io,
       {"2 shard file(s)", "s1.safetensors, s3.safetensors", "model.safetensors.index.json"}},
      {"index maps tensors absent from their shard",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), indexJson({{"a", "s1.safetensors"},
                                                                       {"ghost", "s1.safetensors"},
                                                                       {"phantom", "s1.safetensors"}}));
         hs::writeSafetensors(d.file("s1.safetensors"), {u8("a", 1, 1)});
       },
       ErrorKind::Corrupt,
       {"2 tensor(s)", "ghost (in s1.safetensors)", "phantom (in s1.safetensors)"}},
      {"tensor in two shards",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"),
                    indexJson({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}));
         hs::writeSafetensors(d.file("s1.safetensors"), {u8("a", 1, 1)});
         hs::writeSafetensors(d.file("s2.safetensors"), {u8("a", 1, 2), u8("b", 1, 2)});
       },
       ErrorKind::Corrupt,
       {"a: tensor is stored in two shards", "s1.safetensors", "s2.safetensors"}},
      {"index not JSON",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), "{\n  \"weight_map\": {,}\n}");
       },
       ErrorKind::Corrupt,
       {"model.safetensors.index.json", "invalid JSON at line 2, column 18"}},
      {"index is an HTML page",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), "<!DOCTYPE html><html>");
       },
       ErrorKind::Corrupt,
       {"HTML page"}},
      {"index without weight_map",
       [](const ScratchDir& d) { writeBytes(d.file("model.safetensors.index.json"), R"({"metadata":{}})"); },
       ErrorKind::Corrupt,
       {"weight_map", "missing"}},
      {"weight_map is a list",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), R"({"weight_map":[]})");
       },
       ErrorKind::Corrupt,
       {"weight_map: must be an object"}},
      {"shard name not a string",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), R"({"weight_map":{"a":3}})");
       },
       ErrorKind::Corrupt,
       {"weight_map.a", "file name string"}},
      {"shard outside the directory",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), indexJson({{"a", "../evil.safetensors"}}));
       },
       ErrorKind::Corrupt,
       {"weight_map.a", "../evil.safetensors", "plain file name"}},
      {"shard in a subdirectory",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), indexJson({{"a", "sub/x.safetensors"}}));
       },
       ErrorKind::Corrupt,
       {"sub/x.safetensors", "plain file name"}},
      {"absolute shard path",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), indexJson({{"a", "/etc/passwd"}}));
       },
       ErrorKind::Corrupt,
       {"/etc/passwd", "plain file name"}},
      {"corrupt shard",
       [](const ScratchDir& d) {
         writeBytes(d.file("model.safetensors.index.json"), indexJson({{"a", "s1.safetensors"}}));
         writeBytes(d.file("s1.safetensors"), "abc");
       },
       ErrorKind::Corrupt,
       {"s1.safetensors", "header too small"}},
  };
  for (const auto& r : rows) {
    SECTION(r.what) {
      ScratchDir dir;
      r.setup(dir);
      requireError([&] { hs::Checkpoint::open(dir.path()); }, r.kind, r.fragments);
    }
  }
}

TEST_CASE("checkpoint: a missing directory is an i/o error", "[formats][checkpoint]") {
  ScratchDir dir;
  requireError([&] { hs::Checkpoint::open(dir.file("nope")); }, ErrorKind::Io,
               {dir.file("nope"), "not found"});
}

// Checkpoints that transformers 5.17 saved through safetensors 0.8 (tests/fixtures/parity/). Shapes
// follow from each config.json: q_proj [heads*head_dim, hidden], k/v [kv*head_dim, hidden], ...
TEST_CASE("checkpoint: files written by the safetensors library", "[formats][checkpoint][parity]") {
  struct Row {
    const char* name;
    DType dtype;
    std::size_t tensors;
    int64_t vocab, hidden, inter, q, kv;
    bool lmHead;
  };
  const Row rows[] = {
      {"llama2_spm", DType::F16, 35, 800, 64, 160, 64, 64, true},
      {"llama3_bpe", DType::BF16, 20, 606, 64, 128, 64, 32, false},
      {"mistral_swa", DType::F32, 21, 503, 96, 160, 96, 24, true},
      {"qwen2_dynamic", DType::BF16, 26, 832, 64, 128, 64, 32, false},
      {"qwen3_qknorm", DType::BF16, 36, 706, 64, 128, 128, 32, true},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    const auto ck = hs::Checkpoint::open(hs::test::fixture(std::string("parity/") + r.name + "/model"));
    CHECK(ck.names().size() == r.tensors);
    CHECK(ck.warnings().empty());
    auto shapeOf = [&](const std::string& n) {
      const hs::TensorView* t = ck.find(n);
      INFO(n);
      REQUIRE(t);
      CHECK(t->dtype == r.dtype);
      return t->shape;
    };
    CHECK(shapeOf("model.embed_tokens.weight") == std::vector<int64_t>{r.vocab, r.hidden});
    CHECK(shapeOf("model.norm.weight") == std::vector<int64_t>{r.hidden});
    CHECK(shapeOf("model.layers.1.self_attn.q_proj.weight") == std::vector<int64_t>{r.q, r.hidden});
    CHECK(shapeOf("model.layers.1.self_attn.k_proj.weight") == std::vector<int64_t>{r.kv, r.hidden});
    CHECK(shapeOf("model.layers.1.self_attn.o_proj.weight") == std::vector<int64_t>{r.hidden, r.q});
    CHECK(shapeOf("model.layers.1.mlp.down_proj.weight") == std::vector<int64_t>{r.hidden, r.inter});
    CHECK((ck.find("lm_head.weight") != nullptr) == r.lmHead);
    std::size_t bytes = 0;
    for (const auto& n : ck.names())
      bytes += static_cast<std::size_t>(ck.find(n)->numel()) * hs::dtypeSize(r.dtype);
    CHECK(ck.totalBytes() == bytes);
  }
}
