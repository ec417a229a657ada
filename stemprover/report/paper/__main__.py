"""``python -m stemprover.report.paper``: build the paper, or rewrite the README headline."""

from __future__ import annotations

import argparse
import sys

from stemprover.errors import StemproverError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stemprover.report.paper", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile",
        default=None,
        help="smoke, cpu or gpu (default: cpu; "
        "with --readme the best profile that has results: gpu, then cpu)",
    )
    parser.add_argument("--readme", action="store_true", help="rewrite README's headline table")
    parser.add_argument("--no-latex", action="store_true", help="only write generated files")
    args = parser.parse_args(argv)
    try:
        if args.readme:
            from stemprover.report.readme import update_readme

            path, profile = update_readme(args.profile)
            print(f"paper: wrote the headline of {path.name} from results/{profile}/")
        else:
            from stemprover.report.paper.build import build_paper

            build_paper(args.profile or "cpu", latex=not args.no_latex)
    except StemproverError as exc:
        print(f"stemprover.report.paper: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
