"""Training and held-out text from Debian text packages carried as .deb files, and the BPE tokenizer.

Sources (see resources/model/README.md for licences): fortunes + fortunes-min (BSD fortune data),
jargon-text (the Jargon File, public domain), dict-gcide (GCIDE, GPL-2+). Held out, never trained
on (tokenizer included): the fortune files startrek, tao and zippy, and the last 5% of the Jargon File.

load_texts(more_text=True) adds training prose from eight more packages (fetch-debs.sh DIR --more), about
18.5M characters, the held-out text unchanged: bible-kjv-text (King James Version, public domain),
perl-doc (GPL-1+ or Artistic), python3.11-doc (PSF licence), debian-reference-en, debian-policy and
maint-guide (GPL-2+), developers-reference (GPL-2), gnu-standards (GFDL-1.3+, no invariant sections).
moretext.py extracts them (HTML prose, pod without markup or code, KJV verses as paragraphs).
"""
import glob
import gzip
import os
import re
import subprocess
from collections import Counter

HELD_OUT_FORTUNES = ("startrek", "tao", "zippy")
SPECIALS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 as in Llama 2
# Qwen2's pre-tokenizer pattern: one digit per pre-token, so a passkey is copied digit by digit.
SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def unpack_debs(deb_dir, root):
    """dpkg -x every .deb of deb_dir into root (idempotent)."""
    os.makedirs(root, exist_ok=True)
    for deb in sorted(glob.glob(os.path.join(deb_dir, "*.deb"))):
        subprocess.run(["dpkg", "-x", deb, root], check=True)


def _clean(text):
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and ln != "[1913 Webster]" and not ln.startswith("[WordNet")]
    return "\n".join(re.sub(r"[ \t]+", " ", ln) for ln in lines)


def load_texts(root, gcide_chars=12_000_000, more_text=False):
    """Returns (train_docs, heldout_docs): lists of short documents (fortunes, paragraphs, entries).
    more_text: also the training documents of moretext.py's packages, after the others (the held-out
    documents stay the same); raises FileNotFoundError naming any of those packages that is missing."""
    train, held = [], []
    fdir = os.path.join(root, "usr/share/games/fortunes")
    for path in sorted(glob.glob(os.path.join(fdir, "*"))):
        name = os.path.basename(path)
        if "." in name or os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            docs = [_clean(d) for d in f.read().split("\n%\n")]
        docs = [d for d in docs if len(d) > 20]
        (held if name in HELD_OUT_FORTUNES else train).extend(docs)
    with gzip.open(os.path.join(root, "usr/share/doc/jargon-text/jargon.txt.gz"), "rt", errors="replace") as f:
        paras = [_clean(p) for p in f.read().split("\n\n")]
    paras = [p for p in paras if len(p) > 40 and "───" not in p and "│" not in p]
    cut = int(len(paras) * 0.95)
    train.extend(paras[:cut])
    held.extend(paras[cut:])
    with gzip.open(os.path.join(root, "usr/share/dictd/gcide.dict.dz"), "rt", errors="replace") as f:
        raw = f.read(gcide_chars)
    entries = [_clean(e) for e in raw.split("\n\n")[40:]]  # skip the database header
    train.extend(e for e in entries if len(e) > 40)
    if more_text:
        train.extend(more_texts(root, held)[0])
    return train, held


def more_texts(root, held_docs):
    """The extra training documents of load_texts(more_text=True), and {package: [documents, characters,
    seconds]} (moretext.py: sources, licences, extraction)."""
    import moretext

    return moretext.more_docs(root, held_docs)


def train_tokenizer(docs, vocab_size):
    """Byte-level BPE (Qwen2-style split, NFC) with a TemplateProcessing post-processor adding <s>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def save_tokenizer(tok, out_dir, max_len):
    import json

    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
           "model_max_length": max_len}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def word_list(docs, n=2000, skip=150):
    """Frequent lowercase words of the training text, minus the most common: keys and needle words."""
    c = Counter()
    for d in docs[::3]:
        c.update(re.findall(r"\b[a-z]{4,10}\b", d))
    words = [w for w, _ in c.most_common(n + skip)][skip:]
    return sorted(words)


class ByteTokenizer:
    """CPU debugging stand-in (this machine has no `tokenizers`): bytes 3..258, same API subset."""

    def encode_batch(self, texts, add_special_tokens=False):
        class E:
            def __init__(self, ids):
                self.ids = ids
        return [E(([1] if add_special_tokens else []) + [b + 3 for b in t.encode()]) for t in texts]

    def encode(self, text, add_special_tokens=True):
        return self.encode_batch([text], add_special_tokens)[0]

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i - 3 for i in ids if i >= 3).decode(errors="replace")

    def get_vocab_size(self):
        return 259
