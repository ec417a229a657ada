"""Render a profile's corpus from the shell.

    python -m stemprover.corpus --profile cpu            # into build/cache/cpu/corpus
    python -m stemprover.corpus --profile smoke --out /tmp/corpus

Prints the corpus summary (counts, durations, render time) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stemprover.corpus.build import corpus_config, corpus_summary, ensure_corpus, render_corpus
from stemprover.errors import StemproverError
from stemprover.project.config import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemprover.corpus", description=__doc__)
    parser.add_argument("--profile", choices=PROFILES, default="smoke")
    parser.add_argument("--out", type=Path, default=None, help="corpus folder (default: cache)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        if args.out is None:
            out = ensure_corpus(args.profile, progress=not args.quiet)
        else:
            out = args.out
            render_corpus(corpus_config(args.profile), out, progress=not args.quiet)
    except StemproverError as err:
        print(f"stemprover: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"corpus": str(out), **corpus_summary(out)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
