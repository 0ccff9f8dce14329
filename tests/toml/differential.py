#!/usr/bin/python3
"""Differential test of adaptor/toml against an independent TOML 1.0 reader, Python's tomllib.

Three parts, all fed through build/test/toml-dump in one process:
1. hand-written documents covering the TOML 1.0 grammar (valid and invalid);
2. the initdata files of tests/data/initdata;
3. a bounded number of deterministic random mutations of all of the above.
For every document both readers must agree on accepting it, and when both accept, on the
value tree. Ends with "toml: N passed, N failed".

Usage: /usr/bin/python3 tests/toml/differential.py [toml-dump] [mutations] [seed]   (repo root)"""

import datetime
import glob
import json
import math
import random
import subprocess
import sys
import tomllib

DUMP = sys.argv[1] if len(sys.argv) > 1 else "build/test/toml-dump"
MUTATIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 20261201

VALID = [
    "",
    "# only a comment\n",
    "a = 1\n",
    "a = 1",
    "a=1\r\nb=2\r\n",
    "\ufeffa = 1\n",
    'bare_key-1 = "x"\n"quoted key" = 1\n\'literal key\' = 2\n"" = 3\n',
    'a.b.c = 1\na.b.d = 2\na . e = 3\n',
    '[t]\nx = 1\n[t.u]\ny = 2\n',
    '[a.b.c]\nz = 1\n[a]\nw = 2\n',
    '[a.b.c]\nz = 1\n[a.b]\nw = 2\n',
    '[fruit]\napple.color = "red"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n',
    '[[arr]]\nx = 1\n[[arr]]\nx = 2\n[arr.sub]\ny = 3\n[[arr.list]]\nz = 4\n',
    '[ a . "b c" . \'d\' ]\nk = 1\n',
    's = "tab\\there \\"q\\" \\\\ \\u00e9 \\U0001F600 \\b\\f\\n\\r"\n',
    "s = 'C:\\Users\\nodejs'\n",
    's = """\nline1\nline2"""\n',
    's = """line \\\n    continued \\\n\n  here"""\n',
    's = """a""b""""\n',
    "s = '''\nraw \\n '' text'''\n",
    "s = '''a''b'''''\n",
    's = """"quoted""""\n',
    's = """\r\nwin\r\nlines\r\n"""\n',
    "s = '''\n\"\"\"\ninner\n\"\"\"\n'''\n",
    'i = [0, +1, -1, 1_000, 0xDEAD_beef, 0o755, 0b1101, 9223372036854775807, -9223372036854775808]\n',
    'f = [1.0, -0.5, 3.14_15, 1e10, 1E-3, 6.626e-34, +inf, -inf, inf, 0.0, -0.0, 1_0.0_1e1_0]\n',
    'n = nan\nm = +nan\n',
    'b = [true, false]\n',
    'd = [1979-05-27T07:32:00Z, 1979-05-27T00:32:00-07:00, 1979-05-27T00:32:00.999999+01:30,'
    ' 1979-05-27 07:32:00Z, 1979-05-27t07:32:00z, 1979-05-27T07:32:00, 1979-05-27, 07:32:00, 00:32:00.5]\n',
    'leap = 2024-02-29\n',
    'a = [\n  1,\n  2, # comment\n  3,\n]\n',
    'a = [ [1, 2], ["a", \'b\'], [], [[]], [{x = 1}] ]\n',
    'a = [1, "mixed", 2.0]\n',
    't = { x = 1, y.z = "q", w = { } }\n',
    't = {}\n',
    't = { a = [1,\n 2] }\n',
    'key = "value" # trailing comment\n[table] # header comment\n',
    '  indented = 1\n\t[  tab  ]\n\tk = 2\n',
    '[data]\n"aa.toml" = \'\'\'\n[x]\ny = """\nz\n"""\n\'\'\'\n',
    'a = "\u00e9\u4e2d\U0001f600"\n',
    '"a.b" = 1\na.b = 2\n',
    '1234 = 1\n-_ = 2\n',
    'x = 1979-05-27T07:32:00.123456789Z\n',
]

INVALID = [
    "a = \n",
    "a\n",
    "= 1\n",
    "a = 1 b = 2\n",
    "a = 1\na = 2\n",
    'a = 1\n"a" = 2\n',
    "a.b = 1\na.b = 2\n",
    "a = 1\na.b = 2\n",
    "[a]\n[a]\n",
    "[a]\nb = 1\n[a.b]\n",
    "a.b.c = 1\n[a.b]\n",
    "[a.b.c]\nz = 1\n[a]\nb.c.t = 2\n",
    "[[a]]\n[a]\n",
    "a = []\n[[a]]\n",
    "a = {}\n[a]\n",
    "a = {x = 1}\na.y = 2\n",
    "a = {x = 1, }\n",
    "a = {x = 1\n}\n",
    "a = {x = 1, x = 2}\n",
    "[a\n",
    "[a]]\n",
    "[[a]\n",
    "[]\n",
    "a = [1, 2\n",
    "a = [1 2]\n",
    "a = [,]\n",
    's = "unterminated\n',
    's = "bad \\q escape"\n',
    's = "\\uD800"\n',
    's = "\\u12"\n',
    's = """never closed\n',
    "s = '''never closed\n",
    "s = 'single\nline'\n",
    's = """a""""""\n',
    's = "tab\tok but \x01 not"\n',
    "# comment with \x7f delete\n",
    "a = 1\rb = 2\n",
    'a = bareword\n',
    "a = 01\n",
    "a = 1__0\n",
    "a = _1\n",
    "a = 1_\n",
    "a = +0x10\n",
    "a = 0x\n",
    "a = 0xG\n",
    "a = 9223372036854775808\n",   # TOML 1.0: must be an error (tomllib keeps big ints)
    "a = -9223372036854775809\n",
    "a = 1.\n",
    "a = .1\n",
    "a = 1.e5\n",
    "a = 1e\n",
    "a = 01.5\n",
    "a = infinity\n",
    "a = True\n",
    "a = 1979-13-27\n",
    "a = 1979-02-30\n",
    "a = 2023-02-29\n",
    "a = 1979-05-27T25:00:00Z\n",
    "a = 1979-05-27T07:32Z\n",
    "a = 07:32\n",
    "a = 1979-05-27T07:32:00+7:00\n",
    "a = 1979-05-27T07:32:00.Z\n",
    'a = "\xff"\n'.encode("latin-1").decode("latin-1"),
    "a.b..c = 1\n",
    "a. = 1\n",
    "\"a\nb\" = 1\n",
]


def tag(v):
    """tomllib's value in toml-dump's tagged form."""
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": "nan" if math.isnan(v) else repr(v)}
    if isinstance(v, str):
        return v
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return {"datetime": True}
    if isinstance(v, list):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        return {k: tag(x) for k, x in v.items()}
    raise TypeError(type(v))


def normalise(v):
    """toml-dump's tree with floats and date-times made comparable to tag()."""
    if isinstance(v, dict):
        if set(v) == {"float"}:
            f = float(v["float"])
            return {"float": "nan" if math.isnan(f) else repr(f)}
        if set(v) == {"datetime"}:
            return {"datetime": True}
        if set(v) in ({"int"}, {"bool"}):
            return v
        return {k: normalise(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    return v


def in_int64(v):
    if isinstance(v, bool):
        return True
    if isinstance(v, int):
        return -(1 << 63) <= v < (1 << 63)
    if isinstance(v, list):
        return all(in_int64(x) for x in v)
    if isinstance(v, dict):
        return all(in_int64(x) for x in v.values())
    return True


def reference(data):
    """tomllib's verdict, with two deliberate differences: a leading byte-order mark is
    skipped (Go's TOML readers do that too), and integers outside 64 bits are an error, as
    TOML 1.0 requires (tomllib keeps them as Python ints)."""
    try:
        doc = tomllib.loads(data.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError):
        return False, None
    if not in_int64(doc):
        return False, None
    return True, tag(doc)


def run_dump(docs):
    payload = b"".join(b"%d\n%s" % (len(d), d) for d in docs)
    out = subprocess.run([DUMP], input=payload, capture_output=True, check=True, timeout=300).stdout
    lines = out.decode("ascii").splitlines()
    if len(lines) != len(docs):
        raise RuntimeError("toml-dump answered %d of %d documents" % (len(lines), len(docs)))
    return [json.loads(line) for line in lines]


def mutate(rng, doc):
    alphabet = b"\"'[]{}=.,#\n\r\t \\_-+:eExob0179Tz"
    data = bytearray(doc)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            del data[min(pos, len(data) - 1)]
        elif op == 1:
            data[pos:pos] = bytes([rng.choice(alphabet)])
        elif op == 2 and data:
            data[min(pos, len(data) - 1)] = rng.choice(alphabet)
        elif op == 3:
            data = data[:pos]
        else:
            lines = data.split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def main():
    cases = []  # (name, bytes, expected verdict or None for "whatever tomllib says")
    for i, s in enumerate(VALID):
        cases.append(("valid[%d]" % i, s.encode("utf-8"), True))
    for i, s in enumerate(INVALID):
        raw = s.encode("latin-1") if "\xff" in s else s.encode("utf-8")
        cases.append(("invalid[%d]" % i, raw, False))
    seeds = [c[1] for c in cases]
    for path in sorted(glob.glob("tests/data/initdata/*.toml")):
        with open(path, "rb") as f:
            data = f.read()
        cases.append((path, data, True))
        seeds.append(data)
    rng = random.Random(SEED)
    for i in range(MUTATIONS):
        cases.append(("mutation[%d]" % i, mutate(rng, rng.choice(seeds)), None))

    results = run_dump([c[1] for c in cases])
    passed = failed = 0
    shown = 0
    mutants_bad = 0
    for (name, data, want), got in zip(cases, results):
        ok_ref, tree_ref = reference(data)
        why = None
        if want is not None and ok_ref != want:
            why = "tomllib itself says %s: fix the case" % ("valid" if ok_ref else "invalid")
        elif ("ok" in got) != ok_ref:
            why = "tomllib %s it, adaptor/toml %s" % (
                "accepts" if ok_ref else "rejects", "accepts" if "ok" in got else "rejects (%s)" % got["error"])
        elif ok_ref and normalise(got["ok"]) != tree_ref:
            why = "values differ:\n  ours    %r\n  tomllib %r" % (normalise(got["ok"]), tree_ref)
        if why and shown < 25:
            shown += 1
            print("FAIL %s %r: %s" % (name, data[:200], why))
        if want is None:
            mutants_bad += 1 if why else 0
        elif why:
            failed += 1
        else:
            passed += 1
            print("ok   %s" % name)
    # The mutations count as one test: every one of them must agree.
    if mutants_bad:
        failed += 1
        print("FAIL %d of %d random mutations: the readers disagree" % (mutants_bad, MUTATIONS))
    else:
        passed += 1
        print("ok   %d random mutations: both readers agree on each" % MUTATIONS)
    print("toml: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
