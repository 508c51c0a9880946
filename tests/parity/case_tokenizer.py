"""The tokenizer side of a parity case: training and saving it the way a checkpoint ships it, loading
it back through AutoTokenizer, and recording the ids transformers gives for the test texts."""

import json
from pathlib import Path

import tokenizers
from transformers import AutoTokenizer

import fixture_text
import fixture_tokenizers as ftok

MODEL_MAX_LENGTH = 4096


class CaseTokenizer:
    """The case's tokenizer as transformers loads it, plus the raw tokenizers/sentencepiece objects."""

    def __init__(self, directory, raw=None, sp=None):
        self.directory = Path(directory)
        self.raw, self.sp, self.notes = raw, sp, []
        self.hf = None
        try:
            self.hf = AutoTokenizer.from_pretrained(str(directory))
        except Exception as e:  # the SentencePiece case records the failure instead of stopping
            self.notes.append(f"AutoTokenizer failed: {type(e).__name__}: {e}")

    def ids(self, text):
        if self.hf is not None:
            return list(self.hf(text)["input_ids"])
        return [self.sp.bos_id()] + list(self.sp.EncodeAsIds(text))

    def token_id(self, text):
        if self.hf is not None:
            return self.hf.convert_tokens_to_ids(text)
        return self.sp.PieceToId(text)

    def __len__(self):
        """Ids either tokenizer can produce, so the embedding covers both."""
        sizes = [len(self.hf)] if self.hf is not None else []
        sizes += [self.sp.GetPieceSize()] if self.sp is not None else []
        return max(sizes)


def save_bpe_tokenizer(tok, special, dest, tokenizer_class):
    """Saves through transformers (as a checkpoint would ship) and drops add_bos/add_eos flags, which
    would make transformers rebuild the post-processor instead of using the one in tokenizer.json."""
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        from transformers import TokenizersBackend as PreTrainedTokenizerFast

    kwargs = {f"{k}_token": v for k, v in special.items()}
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, clean_up_tokenization_spaces=False, model_max_length=MODEL_MAX_LENGTH, **kwargs
    )
    hf.save_pretrained(str(dest))
    cfg_path = Path(dest) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    dropped = [k for k in ("add_bos_token", "add_eos_token") if cfg.pop(k, None) is not None]
    written_class = cfg.get("tokenizer_class")
    if tokenizer_class:
        cfg["tokenizer_class"] = tokenizer_class
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return written_class, dropped


def build_tokenizer(case, corpus, dest):
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    kind = case["tokenizer"]
    if kind == "sentencepiece":
        import sentencepiece as spm

        (dest / "tokenizer.model").write_bytes(ftok.sentencepiece_model(corpus, case["tokenizer_vocab"]))
        cfg = ftok.sentencepiece_tokenizer_config(MODEL_MAX_LENGTH)
        (dest / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        sp = spm.SentencePieceProcessor(model_file=str(dest / "tokenizer.model"))
        return CaseTokenizer(dest, sp=sp)
    builders = {
        "llama3": lambda: ftok.llama3_tokenizer(corpus, case["tokenizer_vocab"]),
        "gpt2_bos": lambda: ftok.gpt2_bos_tokenizer(corpus, case["tokenizer_vocab"]),
        "qwen2": lambda: ftok.qwen2_tokenizer(corpus, case["tokenizer_vocab"], case.get("think_tokens", False)),
    }
    tok, special = builders[kind]()
    wanted = case.get("tokenizer_class")
    written, dropped = save_bpe_tokenizer(tok, special, dest, wanted)
    raw = tokenizers.Tokenizer.from_file(str(dest / "tokenizer.json"))
    result = CaseTokenizer(dest, raw=raw)
    result.notes.append(f"save_pretrained wrote tokenizer_class={written!r}; dropped {dropped}")
    if result.hf is None and not wanted:
        written = "PreTrainedTokenizerFast"
        result.notes.append(f"AutoTokenizer could not load it; retrying with tokenizer_class={written}")
        save_bpe_tokenizer(tok, special, dest, written)
        result = CaseTokenizer(dest, raw=raw)
    if wanted and wanted != written:
        # A model-specific class rebuilds the pipeline from its own definition; keep it only if it
        # encodes exactly like tokenizer.json, otherwise fall back to the generic class.
        bad = [t for t in fixture_text.common_texts() + case["special_texts"] if hf_vs_raw(result, t)]
        if result.hf is None or bad:
            result.notes.append(f"{wanted} disagrees with tokenizer.json on {len(bad)} texts; using {written}")
            save_bpe_tokenizer(tok, special, dest, written)
            result = CaseTokenizer(dest, raw=raw)
        else:
            result.notes.append(f"{wanted} encodes identically to tokenizer.json")
    return result


def hf_vs_raw(tok, text):
    """True when transformers' ids differ from tokenizer.json's own encoding."""
    if tok.hf is None:
        return True
    return tok.ids(text) != tok.raw.encode(text, add_special_tokens=True).ids


def tokenize_entries(tok, case, problems):
    texts = fixture_text.common_texts() + case["special_texts"]
    entries, mismatches, roundtrip_failures = [], 0, 0
    for text in texts:
        entry = {"text": text, "ids": tok.ids(text)}
        if tok.sp is not None:
            entry["spm_ids"] = [tok.sp.bos_id()] + list(tok.sp.EncodeAsIds(text))
            mismatches += entry["spm_ids"] != entry["ids"]
            if tok.sp.DecodeIds(tok.sp.EncodeAsIds(text)) != text:
                roundtrip_failures += 1
        else:
            raw_ids = tok.raw.encode(text, add_special_tokens=True).ids
            if raw_ids != entry["ids"]:
                entry["tokenizer_json_ids"] = raw_ids
                mismatches += 1
            if ftok.STRIP_TOKEN not in text:
                plain = tok.raw.encode(text, add_special_tokens=False).ids
                back = tok.raw.decode(plain, skip_special_tokens=False)
                want = fixture_text.nfc(text) if case["tokenizer"] == "qwen2" else text
                roundtrip_failures += back != want
        entries.append(entry)
    if tok.sp is None and mismatches:
        problems.append(f"transformers and tokenizer.json disagree on {mismatches} texts")
    if tok.sp is None and roundtrip_failures:
        problems.append(f"{roundtrip_failures} texts do not round-trip through tokenizer.json")
    return entries, {"texts": len(texts), "mismatches": mismatches, "roundtrip_failures": roundtrip_failures}
