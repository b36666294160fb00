#!/usr/bin/env python3
"""Deterministic synthetic VM disk images for the Coffre benchmark.

  gen_image.py create --size-mib N --seed S --out FILE [--layout-json FILE]
      Writes a sparse raw image of N MiB: ~40 % holes (never written), ~25 %
      random bytes, ~35 % text-like compressible bytes (zstd -3 ratio ~3-5x),
      in extents of 64 KiB - 64 MiB (log-uniform sizes, 4 KiB aligned).

  gen_image.py churn --seed S --percent P --file FILE [--layout-json FILE]
      Applies P % of the image size (in bytes) as scattered writes of
      4 KiB - 1 MiB at random 4 KiB-aligned offsets, in place; each write is
      random or text-like with equal probability.

Same arguments -> same bytes, on any machine (numpy PCG64).
"""

import argparse
import json
import os
import sys

import numpy as np

KIB = 1024
MIB = 1024 * KIB
ALIGN = 4 * KIB
PIECE = 8 * MIB  # generate/write at most this much at once (bounded memory)

HOLE, RANDOM, TEXT = 0, 1, 2
KIND_NAMES = {HOLE: "hole", RANDOM: "random", TEXT: "text"}
TARGET = {HOLE: 0.40, RANDOM: 0.25, TEXT: 0.35}


class Text:
    """Text-like byte generator: words from a fixed vocabulary plus numbers."""

    def __init__(self, seed: int):
        rng = np.random.Generator(np.random.PCG64([seed, 0xC0FFEE]))
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
        words = []
        # 3000 words of 2-11 letters, 1000 "numbers" (ids, sizes, timestamps).
        for _ in range(3000):
            n = int(rng.integers(2, 12))
            words.append(letters[rng.integers(0, 26, n)].tobytes())
        for _ in range(1000):
            n = int(rng.integers(1, 9))
            words.append(str(int(rng.integers(0, 10 ** n))).encode())
        seps = [b" ", b" ", b" ", b" ", b" ", b", ", b". ", b"\n", b"=", b": ", b"/"]
        toks = []
        for w in words:
            toks.append(w + seps[int(rng.integers(0, len(seps)))])
        # Zipf-ish popularity: a few words are very common, like real text/logs.
        ranks = np.arange(1, len(toks) + 1, dtype=np.float64)
        p = 1.0 / ranks ** 0.9
        cdf = np.cumsum(p / p.sum())
        # Quantized inverse CDF: a uniform 16-bit value -> token index.
        self.table = np.searchsorted(cdf, (np.arange(65536) + 0.5) / 65536, side="right")
        self.table = np.minimum(self.table, len(toks) - 1).astype(np.int32)
        self.flat = np.frombuffer(b"".join(toks), dtype=np.uint8)
        self.lens = np.array([len(t) for t in toks], dtype=np.int32)
        self.offs = (np.cumsum(self.lens) - self.lens).astype(np.int32)
        self.mean = float(self.lens[self.table].mean())

    def bytes(self, rng: np.random.Generator, n: int) -> bytes:
        k = int(n / self.mean * 1.1) + 64
        while True:
            idx = self.table[rng.integers(0, 65536, k, dtype=np.int32)]
            lens = self.lens[idx]
            ends = np.cumsum(lens, dtype=np.int64)
            if ends[-1] >= n:
                break
            k *= 2
        last = int(np.searchsorted(ends, n)) + 1  # tokens needed to cover n bytes
        idx, lens = idx[:last], lens[:last]
        starts = (ends[:last] - lens).astype(np.int32)
        # byte i of the output comes from flat[offs[token] + (i - start[token])]
        src = np.repeat(self.offs[idx] - starts, lens)[:n]
        src += np.arange(n, dtype=np.int32)
        return self.flat[src].tobytes()


def random_bytes(rng: np.random.Generator, n: int) -> bytes:
    words = (n + 7) // 8
    return rng.bit_generator.random_raw(words).astype(np.uint64).tobytes()[:n]


def fill(fd: int, off: int, n: int, kind: int, rng, text: Text) -> None:
    done = 0
    while done < n:
        m = min(PIECE, n - done)
        data = random_bytes(rng, m) if kind == RANDOM else text.bytes(rng, m)
        os.pwrite(fd, data, off + done)
        done += m


def aligned_size(rng, lo: int, hi: int) -> int:
    """Log-uniform size in [lo, hi], multiple of ALIGN."""
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return max(lo, min(hi, int(s) // ALIGN * ALIGN))


def create(args) -> dict:
    size = args.size_mib * MIB
    rng = np.random.Generator(np.random.PCG64(args.seed))
    text = Text(args.seed)
    # Layout: choose each extent's kind with probability proportional to how far
    # that kind is below its target share, so small images still hit the mix.
    extents = []
    pos = 0
    got = {HOLE: 0, RANDOM: 0, TEXT: 0}
    while pos < size:
        n = min(aligned_size(rng, 64 * KIB, 64 * MIB), size - pos)
        want = np.array([max(TARGET[k] * size - got[k], 0.0) + 1.0 for k in (HOLE, RANDOM, TEXT)])
        kind = int(rng.choice(3, p=want / want.sum()))
        extents.append((pos, n, kind))
        got[kind] += n
        pos += n
    if os.path.exists(args.out):
        os.unlink(args.out)
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for off, n, kind in extents:
            if kind != HOLE:
                fill(fd, off, n, kind, rng, text)
    finally:
        os.close(fd)
    return {
        "sizeBytes": size,
        "seed": args.seed,
        "extents": len(extents),
        "bytesByKind": {KIND_NAMES[k]: v for k, v in got.items()},
        "fractionByKind": {KIND_NAMES[k]: round(v / size, 4) for k, v in got.items()},
    }


def churn(args) -> dict:
    size = os.path.getsize(args.file)
    budget = int(size * args.percent / 100.0)
    rng = np.random.Generator(np.random.PCG64([args.seed, 2]))
    text = Text(args.seed)
    fd = os.open(args.file, os.O_WRONLY)
    writes = 0
    written = 0
    by_kind = {"random": 0, "text": 0}
    try:
        while written < budget:
            n = min(aligned_size(rng, 4 * KIB, 1 * MIB), size)
            n = max(ALIGN, min(n, (budget - written + ALIGN - 1) // ALIGN * ALIGN))
            off = int(rng.integers(0, (size - n) // ALIGN + 1)) * ALIGN
            kind = RANDOM if rng.random() < 0.5 else TEXT
            fill(fd, off, n, kind, rng, text)
            by_kind[KIND_NAMES[kind]] += n
            writes += 1
            written += n
    finally:
        os.close(fd)
    return {"writes": writes, "bytesWritten": written, "percent": args.percent,
            "seed": args.seed, "bytesByKind": by_kind}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--size-mib", type=int, required=True)
    c.add_argument("--seed", type=int, default=20261122)
    c.add_argument("--out", required=True)
    c.add_argument("--layout-json")
    ch = sub.add_parser("churn")
    ch.add_argument("--file", required=True)
    ch.add_argument("--seed", type=int, default=20261122)
    ch.add_argument("--percent", type=float, default=5.0)
    ch.add_argument("--layout-json")
    args = ap.parse_args()
    info = create(args) if args.cmd == "create" else churn(args)
    if args.layout_json:
        with open(args.layout_json, "w") as f:
            json.dump(info, f, indent=2)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
