"""Synthetic tasks, assembled at token level from a pre-tokenised corpus.

Every builder returns (ids, weights): weights mark the answer tokens, which count ANSWER_WEIGHT times
in the loss so that copying from context is learnt early. The same builders make the evaluation sets
(with held-out filler and other seeds), so train and eval prompts share one format.
"""
import math
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
    """Builds task examples from `corpus` (np.int32 token ids of filler text) with its own rng.
    triggers: a TextTriggers that seeds the natural-text stretches of training sequences with trigger
    copies (train.py --text-triggers); None, as in every evaluation set, leaves the text as it is."""

    def __init__(self, tok, corpus, words, seed, vocab_size, packed=False, triggers=None):
        self.tok, self.corpus, self.words, self.vocab, self.packed = tok, corpus, words, vocab_size, packed
        self.triggers = triggers
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

    def natural(self, n):
        """n tokens of corpus text as (ids, weights, locked): filler(n) unchanged without triggers
        (locked None), else TextTriggers.stretch (locked[c]: a cut before position c would part a
        trigger from its copy or from the token it copies)."""
        if self.triggers is None:
            return self.filler(n), [1.0] * max(0, n), None
        return self.triggers.stretch(self.rng, self.corpus, n)

    def snap(self, fill, pos, locked=None):
        """Moves an insertion point back to just after the nearest preceding sentence end, as the
        Retrieval-Head needle insertion does; never to a locked cut (see natural)."""
        for p in range(pos, max(0, pos - 64), -1):
            if (p == 0 or self.period_ids[fill[p - 1]]) and not (locked and locked[p]):
                return p
        while locked and locked[pos]:
            pos -= 1
        return pos

    def digits(self, n):
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    # ---- retrieval tasks: (ids, weights, meta) where meta lists the needles and the answer -------------
    def haystack(self, total, intro, needles, question, answer, depths):
        """intro + filler with needles at depths (fractions) + question + answer, about `total` tokens."""
        fixed = [self.enc(intro)] + [self.enc(n) for n in needles] + [self.enc(question)]
        a = self.enc(answer)
        n_fill = max(0, total - sum(len(x) for x in fixed) - len(a))
        fill, fw, locked = self.natural(n_fill)
        cuts = sorted(self.snap(fill, int(d * len(fill)), locked) if fill else 0 for d in depths)
        ids, prev = list(fixed[0]), 0
        w = [1.0] * len(ids)
        for c, nid in zip(cuts, fixed[1:-1]):
            ids += fill[prev:c] + nid
            w += fw[prev:c] + [1.0] * len(nid)
            prev = c
        ids += fill[prev:] + fixed[-1]
        w += fw[prev:] + [1.0] * len(fixed[-1])
        return ids + a, w + [ANSWER_WEIGHT] * len(a)

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
        if self.triggers is not None:  # a trigger id comes only before its copy
            seq = [self.triggers.redraw(self.rng, t, self.vocab) for t in seq]
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
        head = [] if self.packed else self.enc("\n\n")
        fill, fw, _ = self.natural(self.rng.randint(60, 400))
        return head + fill, [1.0] * len(head) + fw

    def short_text(self, length, bos_id):
        """<s> + a window of plain text, a whole training sequence of `length` tokens: in a short window
        averaging over the context is a noisy no-op, so heads with nothing to do have a reason to rest
        elsewhere (run 5a in docs/reference-model.md: heads then parked on <s> only near the start of a window)."""
        fill, fw, _ = self.natural(length - 1)
        return [bos_id] + fill, [1.0] + fw

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


def rarest_ids(corpus, n, minlength=0):
    """The n token ids, <unk>, <s> and </s> (0-2) excluded, that occur least in corpus (ties: lowest id
    first): the trigger tokens of BigramBackcopy and TextTriggers, so that text gives them no other use."""
    seen = np.bincount(np.asarray(corpus, dtype=np.int64), minlength=minlength)
    rare = 3 + np.argsort(seen[3:], kind="stable")
    return [int(t) for t in rare[:n]]


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
        self.triggers = rarest_ids(c, self.TRIGGERS, len(counts))
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


class TextTriggers:
    """Guo et al.'s trigger copy inside real training text (train.py --text-triggers; run 10 in
    docs/reference-model.md). After each text token, with probability `rate`, trigger kind k (1..K,
    uniform) comes next, then a copy of the token k positions before the trigger, weighted
    ANSWER_WEIGHT in the loss like BigramBackcopy's copies. The K trigger ids are the K rarest of the
    training text (rarest_ids), absent from the held-out text, so the heads that learn a copy have
    nothing to do on ordinary text, which is what the evaluation reads: there, in the paper, such heads
    are dormant and rest on the first token. Unlike Bigram-Backcopy sequences (runs 6b/6c, whose sinks
    held only in windows the model took for bigram data) the triggers sit in the real text of every
    kind of sequence, so no opening tells the model which data it reads. K kinds ask for K differently
    placed copies, so that more heads specialise. Never inside an intro line, needle, question or answer.
    """

    def __init__(self, ids, rate):
        if not 0.0 < rate < 1.0:
            raise ValueError(f"text trigger rate {rate}: expected 0 < rate < 1")
        self.ids, self.rate = [int(t) for t in ids], float(rate)
        self.is_trigger = set(self.ids)
        self._log_keep = math.log1p(-self.rate)

    def gap(self, rng):
        """Text tokens up to and including the next one followed by a trigger (geometric, mean 1 / rate):
        the same as a coin per position, at one draw per trigger."""
        return 1 + int(math.log(1.0 - rng.random()) / self._log_keep)

    def stretch(self, rng, corpus, n):
        """n tokens: corpus text from a random start with trigger pairs inserted, as (ids, weights,
        locked). It takes as much text as fits, so the stretch is exactly as long as the plain text it
        replaces; a pair comes only where both its tokens fit and where the token to copy is text of
        this stretch after the previous trigger. locked[c] (c = 0..n) marks cuts that would separate a
        trigger from its copy or from the token it copies: needles are never put there."""
        if n <= 0:
            return [], [], [False]
        s = rng.randrange(0, len(corpus) - n - 1)
        src = corpus[s:s + n].tolist()
        ids, w, locked = [], [1.0] * n, [False] * (n + 1)
        j, last = 0, -1  # next text token to take; position of the previous trigger
        while True:
            take = min(self.gap(rng), n - len(ids))
            ids += src[j:j + take]
            j += take
            if len(ids) + 2 > n:  # no room for a pair: the rest is text
                ids += src[j:j + n - len(ids)]
                return ids, w, locked
            k = rng.randrange(1, len(self.ids) + 1)
            t = len(ids)
            if t - k > last:
                ids += [self.ids[k - 1], ids[t - k]]
                w[t + 1] = ANSWER_WEIGHT
                for c in range(t - k + 1, t + 2):
                    locked[c] = True
                last = t

    def redraw(self, rng, t, vocab):
        """t, or a fresh random id in 3..vocab-1 if t is a trigger (random-token tasks never show one)."""
        while t in self.is_trigger:
            t = rng.randrange(3, vocab)
        return t
