"""Benchmark: the code digests that key every cache entry, memoised per file version against
parsing the code again for every slide.

Every slide's tile cache entry and every feature group's entry carries the digest of the code
that made it (:func:`radiopath.io.fingerprint.source_digest`: the syntax tree of each file
without docstrings). A run over ``--slides`` slides asks for the tiling code's digest once per
slide; this measures that many calls with the memo (our path) and with a fresh parse each time
(the plain alternative, what the code did before), checks both give the same digest, and
prints the ratio. Never part of the test run.

    .venv/bin/python benchmarks/bench_code_digest.py              # 300 slides, the demo's cohort
"""

from __future__ import annotations

import argparse
import time

from radiopath.io import fingerprint
from radiopath.slides.cohort import tiling_code_version


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slides", type=int, default=300)
    args = ap.parse_args()

    fingerprint._CODE_MEMO.clear()
    t0 = time.perf_counter()
    ours = {tiling_code_version() for _ in range(args.slides)}
    memo_s = time.perf_counter() - t0

    memoised = fingerprint._code_of
    fingerprint._code_of = fingerprint._parse_code  # the plain alternative: parse every time
    try:
        t0 = time.perf_counter()
        plain = {tiling_code_version() for _ in range(args.slides)}
        plain_s = time.perf_counter() - t0
    finally:
        fingerprint._code_of = memoised
    assert ours == plain and len(ours) == 1, (ours, plain)
    n = args.slides
    print(f"tiling code digest x {n} slides: memoised {memo_s:.2f} s, parsed each time {plain_s:.2f} s")
    print(f"ratio plain / memoised: {plain_s / max(memo_s, 1e-9):.1f}x (same digest {next(iter(ours))})")


if __name__ == "__main__":
    main()
