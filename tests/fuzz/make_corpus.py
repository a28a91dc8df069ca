#!/usr/bin/env python3
"""Writes the seed corpus tests/fuzz/corpus/ from the requests in
tests/unit/check_request.c: every INPUT(...) row, the `input[]` strings and
the `inputs[]` table, with the string macros (GET_1, CHUNKED_HEAD, ...)
expanded. Each seed starts with the harness's flags byte (see
fuzz_request.c): 0x00 feeds the stream whole; pipelined and chunked seeds
also get a byte-by-byte variant (0x09 0x00) and a tiny-limits one (0x10).

Run from the repository root: python3 tests/fuzz/make_corpus.py
"""
import os
import re
import sys

SOURCE = "tests/unit/check_request.c"
OUT = "tests/fuzz/corpus"

STRING = r'"(?:[^"\\\n]|\\.)*"'
TOKEN = re.compile(r'\s*(?:(' + STRING + r')|([A-Za-z_][A-Za-z0-9_]*))')


def unescape(literal):
    """The bytes of one C string literal (without the quotes)."""
    out = bytearray()
    i = 0
    while i < len(literal):
        c = literal[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        e = literal[i + 1]
        i += 2
        if e == "x":
            j = i
            while j < len(literal) and literal[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(literal[i:j], 16) & 0xFF)
            i = j
        elif e in "01234567":
            j = i
            while j < len(literal) and j < i + 2 and literal[j] in "01234567":
                j += 1
            out.append(int(e + literal[i:j], 8) & 0xFF)
            i = j
        else:
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", '"': b'"',
                    "'": b"'", "?": b"?", "a": b"\a", "b": b"\b", "f": b"\f",
                    "v": b"\v"}[e]
    return bytes(out)


def concat(text, macros):
    """Bytes of a sequence of string literals and macro names."""
    out = b""
    pos = 0
    while True:
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        if m.group(1):
            out += unescape(m.group(1)[1:-1])
        else:
            out += macros[m.group(2)]
        pos = m.end()
    if text[pos:].strip():
        raise ValueError("cannot read %r" % text[pos:pos + 40])
    return out


def main():
    src = open(SOURCE, encoding="utf-8").read()
    # Drop comments, but not "*/*" inside a string literal.
    src = re.sub(r'(' + STRING + r')|/\*.*?\*/|//[^\n]*',
                 lambda m: m.group(1) or " ", src, flags=re.S)
    macros = {}
    for m in re.finditer(r"^#define\s+(\w+)\s+((?:.*\\\n)*.*)$", src, re.M):
        body = m.group(2).replace("\\\n", " ")
        # String macros, also those built from earlier ones (X64 X64 ...).
        try:
            macros[m.group(1)] = concat(body, macros)
        except (KeyError, ValueError):
            pass

    seeds = []  # (name, bytes)
    # Rows: {"name", ... INPUT(...) ...}: the name is the first string of the row.
    for m in re.finditer(r'\{\s*(' + STRING + r')[^{}]*?INPUT\(((?:\s*(?:' + STRING
                         + r'|\w+))+)\s*\)', src):
        seeds.append((unescape(m.group(1)[1:-1]).decode(), concat(m.group(2), macros)))
    for m in re.finditer(r'\binput\[\]\s*=\s*((?:\s*(?:' + STRING + r'|\w+))+)\s*;', src):
        seeds.append(("input", concat(m.group(1), macros)))
    for m in re.finditer(r'\binputs\[\]\s*=\s*\{(.*?)\};', src, re.S):
        for item in m.group(1).split(","):
            if item.strip():
                seeds.append(("upgrade then GET", concat(item, macros)))
    if len(seeds) < 50:
        sys.exit("make_corpus: only %d requests found in %s" % (len(seeds), SOURCE))

    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    written = set()
    for name, data in seeds:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
        variants = [("", b"\x00")]
        if b"chunked" in data.lower() or data.count(b"HTTP/1.") > 1:
            variants += [("-bytewise", b"\x09\x00"), ("-tiny", b"\x10")]
        for suffix, flags in variants:
            content = flags + data
            if content in written:
                continue
            written.add(content)
            base = slug + suffix
            path = os.path.join(OUT, base)
            n = 2
            while os.path.exists(path):
                path = os.path.join(OUT, "%s-%d" % (base, n))
                n += 1
            with open(path, "wb") as f:
                f.write(content)
    print("make_corpus: %d seeds in %s" % (len(written), OUT))


if __name__ == "__main__":
    main()
