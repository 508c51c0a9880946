"""Deterministic text for the parity fixtures: the tokenizer training corpus, the texts whose ids are
recorded, and the prompt pool. Everything comes from fixed seeds so a rerun gives the same fixtures."""

import random
import unicodedata

WORDS = (
    "the of and to in is was that for on with as by at from this have not are but had they his her she "
    "he it we you all were when there can an which their said if do will each about how up out them then "
    "many some so these would other into has more two like him see time could no make than first been its "
    "who now people my made over did down only way find use may water long little very after words called "
    "just where most know get through back much before go good new write our used me man too any day same "
    "right look think also around another came come work three must because does part even place well such "
    "model attention head layer token weight tensor matrix value query key softmax logit rotary position "
    "checkpoint loader kernel gradient sequence vocabulary merge prefix sink induction copy previous"
).split()
NAMES = ["Alice", "Bob", "Carol", "Dave", "Eve", "McDonald", "O'Neil", "iPhone", "macOS", "NASA", "GPT", "LLaMA"]
CONTRACTIONS = ["it's", "don't", "they're", "we've", "I'm", "you'll", "she'd", "can't", "IT'S", "DON'T", "We'Re"]
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴善"
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノ"
HANGUL = ["안녕하세요", "세계", "한국어", "텍스트", "모델", "주의", "머리", "토큰"]
ARABIC = ["مرحبا", "بالعالم", "السلام", "عليكم", "كتاب", "نموذج", "انتباه", "العربية", "١٢٣", "٤٥٦"]
CYRILLIC = ["Привет", "мир", "Ёжик", "модель", "внимание", "текст"]
EMOJI = ["😀", "🍕", "🎉", "🚀", "❤️", "👍", "👍🏻", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇫🇷", "🇯🇵", "🧑🏾‍🚀"]
ACCENTED = ["café", "cafe\u0301", "naïve", "nai\u0308ve", "résumé", "re\u0301sume\u0301", "Ångström", "A\u030angstro\u0308m"]
CODE = [
    "def f(x):\n    return x ** 2 + 1  # square plus one\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "if (err != nullptr) { throw Error(\"bad input\"); }",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n",
    "SELECT name, COUNT(*) FROM heads WHERE layer >= 2 GROUP BY name;",
    "const auto& t = tensors.at(\"model.embed_tokens.weight\");",
    "    \t  mixed_indent = True\n",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": false}}",
]


def _english(rng):
    n = rng.randint(4, 14)
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words) + 1), rng.choice(NAMES))
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words) + 1), rng.choice(CONTRACTIONS))
    s = " ".join(words)
    s = s[0].upper() + s[1:]
    if rng.random() < 0.1:
        s = s.upper()
    return s + rng.choice([".", "!", "?", ",", ";", ":", "..."])


def _numbers(rng):
    forms = [
        lambda: str(rng.randint(0, 10 ** rng.randint(1, 12))),
        lambda: f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        lambda: f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(1990, 2030)}",
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        lambda: f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}",
        lambda: f"{rng.uniform(-1000, 1000):.{rng.randint(1, 6)}f}",
        lambda: f"{rng.randint(1, 9)}e-{rng.randint(1, 12)}",
        lambda: hex(rng.randint(0, 1 << 32)),
    ]
    return " ".join(rng.choice(forms)() for _ in range(rng.randint(2, 6)))


def _cjk(rng):
    s = "".join(rng.choice(CJK) for _ in range(rng.randint(4, 16)))
    return s + rng.choice(["。", "，", "！", "？", ""])


def _mixed(rng):
    parts = []
    for _ in range(rng.randint(2, 6)):
        pick = rng.random()
        if pick < 0.15:
            parts.append("".join(rng.choice(KANA) for _ in range(rng.randint(2, 8))))
        elif pick < 0.3:
            parts.append(rng.choice(HANGUL))
        elif pick < 0.45:
            parts.append(" ".join(rng.choice(ARABIC) for _ in range(rng.randint(1, 4))))
        elif pick < 0.55:
            parts.append(rng.choice(CYRILLIC))
        elif pick < 0.75:
            parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3))))
        else:
            parts.append(rng.choice(ACCENTED))
    return " ".join(parts)


def _whitespace(rng):
    pieces = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
    seps = [" " * rng.randint(1, 12), "\t" * rng.randint(1, 3), "\n", "\n\n", " \n ", "\r\n", "\t \t"]
    return "".join(p + rng.choice(seps) for p in pieces)


def training_corpus(seed=0, lines=4000):
    """Lines used to train every tokenizer: English, code, numbers, CJK, emoji, accents, whitespace."""
    rng = random.Random(seed)
    makers = [(_english, 40), (_numbers, 10), (_cjk, 10), (_mixed, 15), (_whitespace, 10), (None, 15)]
    total = sum(w for _, w in makers)
    out = []
    for _ in range(lines):
        r = rng.uniform(0, total)
        for maker, weight in makers:
            r -= weight
            if r <= 0:
                break
        out.append(rng.choice(CODE) if maker is None else maker(rng))
    return out


def _digit_whitespace_run(length=2000, seed=2000):
    rng = random.Random(seed)
    pieces = [" ", "  ", "   ", "\t", "\n", "\n\n", "0", "7", "12", "345", "6789", "2024", " 1", "\t9"]
    s = ""
    while len(s) < length:
        s += rng.choice(pieces)
    return s[:length]


def common_texts():
    """Texts whose HF ids are recorded for every tokenizer (the hard cases of the task list)."""
    texts = [
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "",
        " ",
        "\n",
        "   leading spaces",
        "trailing spaces   ",
        "\n\n\nthree newlines then text",
        "tabs\tand\t\tmore\ttabs",
        "mixed \t \n whitespace \r\n CRLF\r\n",
        "It's, they're, I've, we'll, don't, she'd, I'm",
        "IT'S SHOUTING'S OK, THEY'RE LOUD",
        "Mr. O'Neil's dog's bone isn't 'quoted'",
        "CamelCaseIdentifier and snake_case_identifier and kebab-case",
        "HeLLo WoRLD iPhone macOS NASA",
        "def f(x):\n    return x**2 + 1  # comment\n",
        "for (int i = 0; i < 10; ++i) { sum += a[i]; }",
        "1234567890",
        "3.14159 2,718 -42 +7 1e-5 0x1F 007",
        "2024-01-15T08:30:00Z on 15/01/2024 at 23:59",
        "Price: $1,299.99 (approx. \u20ac1.200,50)",
        "你好，世界！今天天气很好。",
        "日本語のテキストとカタカナ、ひらがな。",
        "안녕하세요 세계",
        "I love 🍕 and 🎉!",
        "Family: 👨‍👩‍👧‍👦 and coder 👩🏽‍💻 and flag 🏳️‍🌈",
        "👍🏻👍🏼👍🏽👍🏾👍🏿",
        "🇫🇷🇯🇵🇧🇷",
        "cafe\u0301 vs caf\u00e9",
        "e\u0301\u0301 double combining; A\u030a vs \u00c5; \u1e9b\u0323",
        "A\u030angstro\u0308m vs \u00c5ngstr\u00f6m",
        "مرحبا بالعالم",
        "العدد ١٢٣ و 456 mixed RTL",
        "שלום עולם",
        "Привет, мир! Ёжик.",
        "Καλημέρα κόσμε",
        "नमस्ते दुनिया",
        "สวัสดีชาวโลก",
        "a" + " " * 20 + "b" + "\t" * 5 + "c" + "\n" * 4 + "d",
        "x" + " " * 300 + "y",
        "a\u00a0b non-breaking\u2003em space",
        "zero\u200bwidth\u200cnon\u200djoiner",
        "bell\u0007 and delete\u007f",
        "https://example.com/path?q=1&r=two#frag",
        "user.name+tag@example.co.uk",
        "# Title\n\n- item 1\n- item 2\n\n```python\nprint('hi')\n```\n",
        '{"key": [1, 2, 3], "nested": {"a": null}}',
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!??? ......",
        "\ufb01 ligature and \uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28",
        "   \n   \n",
        _digit_whitespace_run(),
        " ".join(training_corpus(seed=99, lines=12)),
    ]
    return texts


def prompt_pool(seed=7, count=400):
    """Candidate prompt texts (mostly English with some code, numbers and CJK) for forward/generate."""
    rng = random.Random(seed)
    pool = []
    for _ in range(count):
        parts = [_english(rng) for _ in range(rng.randint(2, 5))]
        if rng.random() < 0.3:
            parts.append(_numbers(rng))
        if rng.random() < 0.2:
            parts.append(_cjk(rng))
        if rng.random() < 0.2:
            parts.append(rng.choice(CODE))
        rng.shuffle(parts)
        pool.append(" ".join(parts))
    return pool


def nfc(text):
    return unicodedata.normalize("NFC", text)
