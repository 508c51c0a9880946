"""Synthetic tasks, assembled at token level from a pre-tokenised corpus.

Every builder returns (ids, weights): weights mark the answer tokens, which count ANSWER_WEIGHT times
in the loss so that copying from context is learnt early. The same builders make the evaluation sets
(with held-out filler and other seeds), so train and eval prompts share one format.
"""
import random

import numpy as np

ANSWER_WEIGHT = 4.0
PASSKEY_INTRO = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
                 "I will quiz you about the important information there.\n")
POSITIVE = ["wonderful", "great", "excellent", "delightful", "superb", "lovely", "fantastic", "pleasant",
            "brilliant", "charming", "good", "perfect"]
NEGATIVE = ["terrible", "awful", "horrible", "dreadful", "poor", "boring", "disappointing", "nasty", "bad",
            "miserable", "dull", "rude"]
NOUNS = ["food", "service", "movie", "book", "hotel", "room", "staff", "music", "game", "story", "show",
         "coffee", "trip", "plot", "song", "meal"]
CATEGORIES = {
    "colour": ["red", "blue", "green", "yellow", "purple", "orange", "brown", "black", "white", "pink"],
    "animal": ["dog", "cat", "horse", "cow", "sheep", "lion", "tiger", "mouse", "rabbit", "goat"],
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "plum", "pear", "melon"],
    "number": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
    "tool": ["hammer", "saw", "drill", "wrench", "shovel", "chisel", "axe", "spade", "pliers", "file"],
}
LETTERS = "ABCD"


class TaskMaker:
    """Builds task examples from `corpus` (np.int32 token ids of filler text) with its own rng."""

    def __init__(self, tok, corpus, words, seed, vocab_size, packed=False):
        self.tok, self.corpus, self.words, self.vocab, self.packed = tok, corpus, words, vocab_size, packed
        self.rng = random.Random(seed)
        self._cache = {}
        self._backcopy = None  # built on first use: it sorts the whole corpus
        self.period_ids = self._period_ids()

    def enc(self, text):
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tok.encode_batch([text], add_special_tokens=False)[0].ids
            if len(self._cache) < 200_000:
                self._cache[text] = ids
        return list(ids)

    def _period_ids(self):
        n = self.tok.get_vocab_size()
        return np.array([self.tok.decode([i]).endswith((".", "\n")) for i in range(n)], dtype=bool)

    def filler(self, n):
        if n <= 0:
            return []
        s = self.rng.randrange(0, len(self.corpus) - n - 1)
        return self.corpus[s:s + n].tolist()

    def snap(self, fill, pos):
        """Moves an insertion point back to just after the nearest preceding sentence end, as the
        Retrieval-Head needle insertion does."""
        for p in range(pos, max(0, pos - 64), -1):
            if p == 0 or self.period_ids[fill[p - 1]]:
                return p
        return pos

    def digits(self, n):
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    # ---- retrieval tasks: (ids, weights, meta) where meta lists the needles and the answer -------------
    def haystack(self, total, intro, needles, question, answer, depths):
        """intro + filler with needles at depths (fractions) + question + answer, about `total` tokens."""
        fixed = [self.enc(intro)] + [self.enc(n) for n in needles] + [self.enc(question)]
        a = self.enc(answer)
        n_fill = max(0, total - sum(len(x) for x in fixed) - len(a))
        fill = self.filler(n_fill)
        cuts = sorted(self.snap(fill, int(d * len(fill))) if fill else 0 for d in depths)
        ids, prev = list(fixed[0]), 0
        for c, nid in zip(cuts, fixed[1:-1]):
            ids += fill[prev:c] + nid
            prev = c
        ids += fill[prev:] + fixed[-1]
        w = [1.0] * len(ids) + [ANSWER_WEIGHT] * len(a)
        return ids + a, w

    def passkey(self, total, depth=None, n_digits=None):
        key = self.digits(n_digits or self.rng.randint(5, 7))
        depth = self.rng.random() if depth is None else depth
        needle = f" The pass key is {key}. Remember it. "
        return self.haystack(total, PASSKEY_INTRO, [needle], "\nWhat is the pass key? The pass key is",
                             f" {key}.\n", [depth]), {"needle": needle.strip(), "answer": key, "depth": depth}

    def magic_numbers(self, total, k=None, depth=None):
        k = k or self.rng.randint(2, 4)
        keys = self.rng.sample(self.words, k)
        vals = [self.digits(7) for _ in keys]
        needles = [f" The special magic number for {w} is {v}. " for w, v in zip(keys, vals)]
        depths = [self.rng.random() for _ in keys]
        q = self.rng.randrange(k)
        if depth is not None:
            depths[q] = depth
        question = f"\nWhat is the special magic number for {keys[q]}? The special magic number for {keys[q]} is"
        intro = "Some special magic numbers are hidden inside the following text. Remember them.\n"
        return self.haystack(total, intro, needles, question, f" {vals[q]}.\n", depths), {
            "needle": needles[q].strip(), "answer": vals[q], "depth": depths[q]}

    def best_thing(self, total, depth=None):
        place = self.rng.choice(self.words).capitalize()
        w = self.rng.sample(self.words, 4)
        phrase = f"{w[0]} the {w[1]} {w[2]} and {w[3]}"
        needle = f" The best thing to do in {place} is to {phrase}. "
        depth = self.rng.random() if depth is None else depth
        question = f"\nWhat is the best thing to do in {place}? The best thing to do in {place} is to"
        return self.haystack(total, "Read the text and answer the question.\n", [needle], question, f" {phrase}.\n",
                             [depth]), {"needle": needle.strip(), "answer": phrase, "depth": depth}

    def kv_lookup(self, total):
        n = max(3, min(240, (total - 40) // 9))
        keys = self.rng.sample(self.words, min(n, len(self.words)))
        vals = [self.digits(4) for _ in keys]
        ids = self.enc("Here is a list of keys and their values.\n")
        for k, v in zip(keys, vals):
            ids += self.enc(f"{k}: {v}\n")
        q = self.rng.randrange(len(keys))
        ids += self.enc(f"What is the value of {keys[q]}? The value of {keys[q]} is")
        a = self.enc(f" {vals[q]}.\n")
        return (ids + a, [1.0] * len(ids) + [ANSWER_WEIGHT] * len(a)), None

    # ---- short tasks that fill the rest of a training sequence ----------------------------------------
    def induction(self):
        # Repeat distances up to 400 tokens, so induction does not stop at the trained span length.
        seq = [self.rng.randrange(3, self.vocab) for _ in range(self.rng.randint(8, 400))]
        ids = ([] if self.packed else self.enc("\n")) + seq * self.rng.randint(2, 3)
        return ids, [1.0] * len(ids)

    def copy(self):
        span = self.filler(self.rng.randint(10, 60))
        a = self.enc(("" if self.packed else "\n") + "Copy this text: ")
        b = self.enc("\nCopy: ")
        ids = a + span + b + span + self.enc("\n")
        w = [1.0] * (len(a) + len(span) + len(b)) + [2.0] * len(span) + [1.0]
        return ids, w

    def sentiment_example(self):
        pos = self.rng.random() < 0.5
        adj = POSITIVE if pos else NEGATIVE
        n1, n2 = self.rng.sample(NOUNS, 2)
        text = f"The {n1} was {self.rng.choice(adj)} and the {n2} was {self.rng.choice(adj)}."
        return {"prompt": f"Review: {text}\nSentiment:", "choices": [" positive", " negative"],
                "answer": 0 if pos else 1}

    def choice_example(self):
        cats = list(CATEGORIES)
        cat = self.rng.choice(cats)
        right = self.rng.choice(CATEGORIES[cat])
        wrong = [self.rng.choice(CATEGORIES[c]) for c in self.rng.sample([c for c in cats if c != cat], 3)]
        ans = self.rng.randrange(4)
        opts = wrong[:ans] + [right] + wrong[ans:]
        body = "".join(f"\n{LETTERS[i]}. {o}" for i, o in enumerate(opts))
        article = "an" if cat[0] in "aeiou" else "a"
        return {"prompt": f"Question: Which of these is {article} {cat}?{body}\nAnswer:",
                "choices": [f" {c}" for c in LETTERS], "answer": ans}

    def labelled(self, ex):
        p = self.enc(("" if self.packed else "\n") + ex["prompt"])
        a = self.enc(ex["choices"][ex["answer"]] + "\n")
        return p + a, [1.0] * len(p) + [ANSWER_WEIGHT] * len(a)

    def text(self):
        ids = ([] if self.packed else self.enc("\n\n")) + self.filler(self.rng.randint(60, 400))
        return ids, [1.0] * len(ids)

    def short_text(self, length, bos_id):
        """<s> + a window of plain text, a whole training sequence of `length` tokens: in a short window
        averaging over the context is a noisy no-op, so heads with nothing to do have a reason to rest
        elsewhere (run 5a in docs/reference-model.md: heads then parked on <s> only near the start of a window)."""
        ids = [bos_id] + self.filler(length - 1)
        return ids, [1.0] * length

    def backcopy(self, length, bos_id):
        """<s> + a Bigram-Backcopy sequence (Guo et al. 2024) of `length` tokens: see BigramBackcopy."""
        if self._backcopy is None:
            self._backcopy = BigramBackcopy(self.corpus)
        return self._backcopy.sequence(self.rng, length, bos_id)

    # ---- one training sequence -------------------------------------------------------------------------
    def sequence(self, length, bos_id):
        """<s> + one retrieval example of random length + short tasks, cut to `length` tokens.
        packed=True opens each short task with its own <s> as packed pre-training does (tried to grow
        an attention sink on <s>; it did not, see docs/reference-model.md); predicting <s> has weight 0."""
        r = self.rng.random()
        size = self.rng.randint(100, length - 1)
        if r < 0.45:
            (ids, w), _ = self.passkey(size)
        elif r < 0.70:
            (ids, w), _ = self.magic_numbers(size)
        elif r < 0.85:
            (ids, w), _ = self.best_thing(size)
        else:
            (ids, w), _ = self.kv_lookup(size)
        ids, w = [bos_id] + ids, [1.0] + w
        while len(ids) < length:
            r = self.rng.random()
            if r < 0.25:
                a, b = self.induction()
            elif r < 0.35:
                a, b = self.copy()
            elif r < 0.50:
                a, b = self.labelled(self.sentiment_example())
            elif r < 0.70:
                a, b = self.labelled(self.choice_example())
            else:
                a, b = self.text()
            ids += ([bos_id] if self.packed else []) + a
            w += ([0.0] if self.packed else []) + b
        return ids[:length], w[:length]


class BigramBackcopy:
    """Guo et al. 2024's Bigram-Backcopy task ("Active-dormant attention heads"), on this corpus's tokens.

    Text comes from the corpus's own bigram model (the next token is the successor of a random
    occurrence of the current token). With probability TRIGGER_RATE per position a trigger token is
    emitted instead, and the token after a trigger copies the token before it. The triggers are the
    TRIGGERS token ids that occur least in the training text, so on text, as on most positions of
    these sequences, a head that learns the copy has nothing to do: in the paper such heads become
    dormant and rest on the first token. Copied tokens weigh ANSWER_WEIGHT in the loss.
    These are the only training sequences in which text-like tokens follow <s> directly (all others
    open with a task's intro line), so a model trained with them reads a window "<s> + text" as one of
    them: runs 6b/6c in docs/reference-model.md rest on token 0 there, and only there.
    """

    TRIGGERS = 3
    TRIGGER_RATE = 0.02

    def __init__(self, corpus):
        c = np.asarray(corpus, dtype=np.int64)
        order = np.argsort(c[:-1], kind="stable")
        self.succ = c[1:][order]
        counts = np.bincount(c[:-1], minlength=int(c.max()) + 1)
        self.start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.count = counts
        self.corpus = c
        seen = np.bincount(c, minlength=len(counts))
        cand = np.arange(3, len(seen))  # ids 0-2 are <unk>, <s>, </s>
        rare = cand[np.argsort(seen[3:], kind="stable")]
        self.triggers = [int(t) for t in rare[:self.TRIGGERS]]
        self.is_trigger = set(self.triggers)

    def next_token(self, rng, t):
        n = int(self.count[t]) if t < len(self.count) else 0
        if n == 0:
            return int(self.corpus[rng.randrange(len(self.corpus))])
        return int(self.succ[self.start[t] + rng.randrange(n)])

    def sequence(self, rng, length, bos_id):
        ids = [bos_id, int(self.corpus[rng.randrange(len(self.corpus))])]
        w = [1.0, 1.0]
        while len(ids) < length:
            if ids[-1] in self.is_trigger and len(ids) >= 3:
                ids.append(ids[-2])
                w.append(ANSWER_WEIGHT)
            elif rng.random() < self.TRIGGER_RATE:
                ids.append(rng.choice(self.triggers))
                w.append(1.0)
            else:
                ids.append(self.next_token(rng, ids[-1]))
                w.append(1.0)
        return ids[:length], w[:length]
