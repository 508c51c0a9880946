"""Extra training prose for corpus.load_texts(more_text=True): paragraph-sized documents from more
Debian 12 packages (fetch-debs.sh DIR --more downloads them). Training text only: nothing here is held out.

| package | licence (usr/share/doc/PKG/copyright) | what is kept |
|---|---|---|
| bible-kjv-text | King James Version: public domain (package code GPL-2+) | verses, a few per paragraph, per chapter |
| perl-doc | Perl's pod: GPL-1+ or Artistic | pod paragraphs, markup stripped, verbatim code dropped |
| python3.11-doc | PSF licence | the HTML pages' main text: p, dd, dt, li, headings |
| debian-reference-en | GPL-2+ | HTML prose as above |
| debian-policy | GPL-2+ | HTML prose of the Policy Manual and its companion documents |
| developers-reference | GPL-2 | HTML prose as above |
| maint-guide | GPL-2+ | HTML prose as above |
| gnu-standards | GFDL-1.3+, no invariant sections | HTML prose of the GNU coding standards and maintainers' guide |

ncompress (public domain) is read too: its `compress -dc` decompresses the KJV's LZW windows.

Code blocks (HTML pre, verbatim pod paragraphs), tables, navigation, tables of contents, index and search
pages are dropped. Any document that shares an 8-word run with the held-out text is dropped too (none
did when this was written), so that no held-out passage can be learnt through the new sources.
Left out: dict-foldoc (FOLDOC copies about 1,500 Jargon File entries, whose last 5% is held out) and
dict-wn (WordNet glosses, 10.6 MB of .deb for little prose).
"""
import concurrent.futures
import glob
import html.parser
import os
import re
import struct
import subprocess
import time

# package -> glob (relative to the unpack root) of the files read; a package whose glob is empty is missing.
SOURCES = {
    "bible-kjv-text": "usr/lib/bible.data",
    "perl-doc": "usr/share/perl/*/pod/*.pod",
    "python3.11-doc": "usr/share/doc/python3.11/html/**/*.html",
    "debian-reference-en": "usr/share/debian-reference/*.en.html",
    "debian-policy": "usr/share/doc/debian-policy/**/*.html",
    "developers-reference": "usr/share/developers-reference/*.html",
    "maint-guide": "usr/share/doc/maint-guide/html/*.en.html",
    "gnu-standards": "usr/share/doc/gnu-standards/*.html",
}
# package -> the program it provides (relative to the unpack root): decompresses bible-kjv-text's windows.
TOOLS = {"ncompress": "usr/bin/compress"}
# Pages that are navigation, indexes, whole-book copies of other pages or licence texts.
SKIP_PAGES = re.compile(r"(^|/)(genindex.*|py-modindex|modindex|search|contents|index(\.en)?|copyright|license|bugs|"
                        r"about|glossary|developers-reference|perl-policy-1|menu-policy-1)\.html$"
                        r"|(^|/)perltoc\.pod$")
MIN_CHARS, PARA_CHARS = 40, 800  # documents below MIN_CHARS are dropped; KJV paragraphs stop at PARA_CHARS


def _norm(text):
    return re.sub(r"\s+", " ", text).strip()


# --- KJV: bible.data is Chip Chapin's Bible Retrieval System file: a header, a table of window offsets
# and 64 KiB windows of text, each compressed on its own by Unix `compress` (LZW, 9..16-bit codes) after
# one shared 3-byte compress header. Debian's ncompress decompresses each window (header + window).

def _uncompress(compress_bin, stream, what):
    r = subprocess.run([compress_bin, "-dc"], input=stream, capture_output=True)
    if r.returncode != 0:
        raise ValueError(f"{what}: compress -dc failed ({r.returncode}): {r.stderr.decode(errors='replace')[:200]}")
    return r.stdout


def kjv_docs(path):
    root = path[:-len(SOURCES["bible-kjv-text"])]  # the unpack root, where ncompress is unpacked too
    with open(path, "rb") as f:
        data = f.read()
    wsize, wnum = struct.unpack(">II", data[0x54:0x5c])
    offs = struct.unpack(">%dI" % (wnum + 1), data[0x5c:0x5c + 4 * (wnum + 1)])
    if data[:4] != b"EC02" or data[offs[0] - 3:offs[0] - 1] != b"\x1f\x9d":
        raise ValueError(f"{path}: not a Bible Retrieval System data file (magic EC02 + compress header)")
    header, compress_bin = data[offs[0] - 3:offs[0]], os.path.join(root, TOOLS["ncompress"])
    text = b"".join(_uncompress(compress_bin, header + data[offs[i]:offs[i + 1]], f"{path} window {i}")
                    for i in range(wnum))
    docs, cur, chapter = [], [], None
    for line in text.decode("ascii").splitlines()[1:]:  # line 0 is the file's title
        m = re.match(r"(\d?[A-Za-z]+\d+):\d+ (.*)", line)
        if not m:
            raise ValueError(f"{path}: unexpected verse line {line[:40]!r}")
        if cur and (m.group(1) != chapter or sum(map(len, cur)) + len(m.group(2)) > PARA_CHARS):
            docs.append(" ".join(cur))
            cur = []
        chapter = m.group(1)
        cur.append(m.group(2).strip())
    docs.append(" ".join(cur))
    return docs


# --- pod

def _pod_codes(text):
    text = re.sub(r"[XZ]<+[^>]*>+", "", text)  # index entries, null codes
    for n in (4, 3, 2):  # C<< $a <=> $b >> forms
        text = re.sub(r"([A-Z])%s\s+(.+?)\s+%s" % ("<" * n, ">" * n), lambda m: _pod_code(m[1], m[2]), text,
                      flags=re.S)
    while True:
        new = re.sub(r"([A-Z])<([^<>]*)>", lambda m: _pod_code(m[1], m[2]), text)
        if new == text:
            return text
        text = new


def _pod_code(kind, body):
    if kind == "E":
        named = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&", "nbsp": " "}
        if body in named:
            return named[body]
        try:
            return chr(int(body, 0) if body.startswith("0") else int(body))
        except ValueError:
            return ""
    if kind == "L":
        if re.match(r"\w+://", body):
            return body
        if "|" in body:
            return body.split("|", 1)[0]
        name, _, sec = body.partition("/")
        sec = sec.strip('"')
        return f'"{sec}" in {name}' if name and sec else (sec or name)
    return body


def pod_docs(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        paras = re.split(r"\n[ \t]*\n", f.read())
    docs, label, skip_to = [], [], None
    for p in paras:
        if skip_to:  # inside =begin FORMAT ... =end FORMAT
            if p.lstrip().startswith("=end"):
                skip_to = None
            continue
        if not p.strip() or p[0] in " \t":  # verbatim (code) paragraph
            continue
        if p.startswith("="):
            cmd, _, rest = p.partition(" ") if " " in p.split("\n", 1)[0] else (p.split("\n", 1)[0], "", "")
            if cmd == "=begin":
                skip_to = "=end"
            elif cmd.startswith("=head") or cmd == "=item":
                rest = _norm(_pod_codes(rest))
                rest = re.sub(r"^(\*|\d+\.?)\s*", "", rest)  # bullet and number items
                if rest:
                    label.append(rest)
            continue  # =pod =cut =over =back =for =encoding: nothing to keep
        docs.append("\n".join(label + [_norm(_pod_codes(p))]))
        label = []
    return docs


# --- HTML

BLOCK = {"p", "dd", "dt", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "div", "dl", "ul", "ol",
         "section", "table", "pre", "body", "figure", "caption", "td", "th", "tr", "br"}
LABEL = {"dt", "h1", "h2", "h3", "h4", "h5", "h6"}  # short texts that open the paragraph after them
KEEP = LABEL | {"p", "dd", "li", "blockquote"}
SKIP_TAGS = {"script", "style", "pre", "table", "nav", "head", "title", "header", "footer", "form", "button"}
SKIP_CLASS = re.compile(r"\b(related|sphinxsidebar|footer|navheader|navfooter|nav-panel|header|toc|"
                        r"contents|shortcontents|section-toc|headerlink|highlight[\w-]*|example|lisp|"
                        r"screen|programlisting|literallayout|synopsis|cmdsynopsis|index[\w-]*|"
                        r"mini-toc|toctree-wrapper|blockquote-title|versionmodified-title)\b")
VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}


class _ProseParser(html.parser.HTMLParser):
    """Collects paragraphs of text from KEEP elements outside skipped ones; with main_only, only inside
    the element with role="main" (Sphinx pages)."""

    def __init__(self, main_only):
        super().__init__(convert_charrefs=True)
        self.stack, self.main_only = [], main_only  # stack: (tag, skipped, in_main, keep)
        self.buf, self.paras = [], []  # paras: (is_label, text)

    def _flush(self, keep, label):
        text = _norm("".join(self.buf).replace("\u00b6", ""))
        self.buf = []
        if text and keep:
            self.paras.append((label, text))

    def _state(self):
        return self.stack[-1] if self.stack else ("", False, not self.main_only, None)

    def handle_starttag(self, tag, attrs):
        if tag in BLOCK:
            _, skipped, in_main, keep = self._state()
            self._flush(keep and in_main and not skipped, keep in LABEL if keep else False)
        if tag in VOID:
            self.buf.append(" ")
            return
        a = dict(attrs)
        _, skipped, in_main, keep = self._state()
        skipped = skipped or tag in SKIP_TAGS or bool(SKIP_CLASS.search(a.get("class") or ""))
        in_main = in_main or a.get("role") == "main"
        keep = tag if tag in KEEP else (None if tag in BLOCK else keep)
        self.stack.append((tag, skipped, in_main, keep))

    def handle_endtag(self, tag):
        if tag in VOID or tag not in (t for t, *_ in self.stack):
            return
        if tag in BLOCK:
            _, skipped, in_main, keep = self._state()
            self._flush(keep and in_main and not skipped, keep in LABEL if keep else False)
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        _, skipped, in_main, keep = self._state()
        if keep and in_main and not skipped:
            self.buf.append(data)


def html_docs(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        page = f.read()
    p = _ProseParser(main_only='role="main"' in page)
    p.feed(page)
    p.close()
    docs, label = [], []
    for is_label, text in p.paras:
        if is_label:
            label.append(text)
        else:
            docs.append("\n".join(label + [text]))
            label = []
    return docs


# --- all sources

def missing_packages(root):
    return [pkg for pkg, pat in {**SOURCES, **TOOLS}.items() if not glob.glob(os.path.join(root, pat), recursive=True)]


def _shingles(text, n=8):
    w = re.findall(r"[a-z0-9]+", text.lower())
    return set(zip(*(w[i:] for i in range(n))))


def more_docs(root, held_docs):
    """Training documents of every package in SOURCES, unpacked under root; returns (docs, stats) with
    stats {package: [documents, characters, seconds]} and stats["dropped_for_held_out_overlap"]."""
    missing = missing_packages(root)
    if missing:
        raise FileNotFoundError(f"more_text: package(s) {', '.join(missing)} not unpacked under {root} "
                                f"(download them with resources/recipe/fetch-debs.sh DIR --more)")
    held = set()
    for d in held_docs:
        held |= _shingles(d)
    docs, stats, dropped = [], {}, 0
    # html.parser is slow (python3.11-doc alone: 11 s on one core): files are read in parallel.
    with concurrent.futures.ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        for pkg, pat in SOURCES.items():
            t0 = time.time()
            paths = [p for p in sorted(glob.glob(os.path.join(root, pat), recursive=True))
                     if os.path.isfile(p) and not SKIP_PAGES.search(p)]
            got = [d for file_docs in pool.map(_file_docs, paths, chunksize=8) for d in file_docs
                   if len(d) >= MIN_CHARS]
            kept = [d for d in got if held.isdisjoint(_shingles(d))]
            dropped += len(got) - len(kept)
            stats[pkg] = [len(kept), sum(map(len, kept)), round(time.time() - t0, 1)]
            docs += kept
    stats["dropped_for_held_out_overlap"] = dropped
    return docs, stats


def _file_docs(path):
    if path.endswith(".data"):
        return kjv_docs(path)
    return pod_docs(path) if path.endswith(".pod") else html_docs(path)
