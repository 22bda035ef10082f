"""Summarise a py-spy raw (collapsed) profile: top frames by own and inclusive share.

Usage:
  .venv/bin/py-spy record --idle --threads -r 200 -f raw -o prof.txt -- .venv/bin/python X.py
  .venv/bin/python benchmarks/pyspy_summary.py prof.txt [--thread MainThread]
      [--within _Driver.loop]
      [--top 15]
"""

from __future__ import annotations

import argparse
import collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--thread", default="", help="keep stacks whose thread names this")
    parser.add_argument("--within", default="", help="keep stacks with a frame naming this")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in open(args.path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        if args.thread and args.thread not in frames[0]:
            continue
        if args.within and not any(args.within in frame for frame in frames):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            inclusive[frame] += n
    where = " ".join(x for x in (args.thread, args.within) if x)
    print(f"{total} samples{' in ' + where if where else ''}")
    print("own time:")
    for frame, n in own.most_common(args.top):
        print(f"  {n / total:6.1%}  {frame}")
    print("inclusive:")
    for frame, n in inclusive.most_common(args.top * 3):
        print(f"  {n / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
