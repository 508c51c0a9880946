"""Tokenizers trained locally for the parity fixtures (nothing can be downloaded on the CUDA host).

Each builder returns a `tokenizers.Tokenizer` whose pipeline copies a real model family's
tokenizer.json (pre-tokenizer regex, byte-level settings, post-processor), trained on the
deterministic corpus from fixture_text."""

import io
import json

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

# Pre-tokenizer regexes as they appear in Meta-Llama-3 and Qwen2 tokenizer.json files; they differ
# only in how digits are grouped (1-3 per piece vs one per piece).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)

# One non-special added token with lstrip/rstrip in every BPE tokenizer, so added-token splitting
# that swallows the surrounding whitespace is exercised.
STRIP_TOKEN = "<sep>"


def _strip_token():
    return AddedToken(STRIP_TOKEN, special=False, lstrip=True, rstrip=True, normalized=False)


def _special(text):
    return AddedToken(text, special=True, normalized=False)


def _byte_level_trainer(vocab_size, special_tokens=()):
    return trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )


def _edit_json(tok, edit):
    """Some settings are not reachable from the Python constructors (training may rebuild the BPE
    model; ByteLevel processors ignore add_prefix_space/use_regex), so they are set in the JSON."""
    data = json.loads(tok.to_str())
    edit(data)
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def _bpe(**kwargs):
    try:
        return models.BPE(**kwargs)
    except TypeError:  # older bindings without the keyword; the flag is then set in the JSON
        return models.BPE()


def llama3_tokenizer(corpus, vocab_size):
    """Llama-3 style: Split(regex, Isolated) + ByteLevel(no regex), ignore_merges, BOS template."""
    tok = Tokenizer(_bpe(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, _byte_level_trainer(vocab_size))
    tok = _edit_json(tok, lambda d: d["model"].update(ignore_merges=True))
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.add_special_tokens([_special(s) for s in specials])
    tok.add_tokens([_strip_token()])
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos}:0 $A:0",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, tok.token_to_id(bos))],
            ),
        ]
    )
    return tok, {"bos": "<|begin_of_text|>", "eos": "<|end_of_text|>"}


def gpt2_bos_tokenizer(corpus, vocab_size):
    """GPT-2 pre-tokenizer (ByteLevel with its built-in regex), <unk>/<s>/</s> at ids 0-2, BOS template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, _byte_level_trainer(vocab_size, ["<unk>", "<s>", "</s>"]))
    tok.add_special_tokens([_special(s) for s in ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]])
    tok.add_tokens([_strip_token()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return tok, {"bos": "<s>", "eos": "</s>", "unk": "<unk>"}


def qwen2_tokenizer(corpus, vocab_size, with_think=False):
    """Qwen2 style: NFC, Split(regex, Isolated) + ByteLevel(no regex), ByteLevel post-processor, no BOS."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, _byte_level_trainer(vocab_size))
    tok.add_special_tokens([_special(s) for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    added = [_strip_token()]
    if with_think:
        added += [AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>")]
    tok.add_tokens(added)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)

    def as_qwen2(data):  # the ByteLevel settings of Qwen2's tokenizer.json (offsets only, not ids)
        data["pre_tokenizer"]["pretokenizers"][1]["trim_offsets"] = False
        data["post_processor"].update(add_prefix_space=False, trim_offsets=False, use_regex=False)

    tok = _edit_json(tok, as_qwen2)
    return tok, {"eos": "<|endoftext|>", "pad": "<|endoftext|>"}


def sentencepiece_model(corpus, vocab_size):
    """Llama-2 style SentencePiece BPE with byte fallback; returns the serialized tokenizer.model bytes."""
    import sentencepiece as spm

    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in corpus if line.strip()]),
        model_writer=writer,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        byte_fallback=True,
        character_coverage=0.98,  # rare CJK characters fall back to bytes; keeps required chars < vocab
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        max_sentence_length=16384,
        minloglevel=2,
    )
    return writer.getvalue()


def sentencepiece_tokenizer_config(model_max_length):
    """tokenizer_config.json as Llama-2 checkpoints ship it next to tokenizer.model (no tokenizer.json)."""

    def entry(text):
        return {"content": text, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}

    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {"0": entry("<unk>"), "1": entry("<s>"), "2": entry("</s>")},
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": model_max_length,
        "pad_token": None,
        "padding_side": "right",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
    }
