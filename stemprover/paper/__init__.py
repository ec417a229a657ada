"""The paper: numbers, claims and tables generated from ``results/``, built with latexmk.

    python -m stemprover.paper --profile cpu        # `make paper PROFILE=cpu`
    python -m stemprover.paper --readme             # README headline table from results/

:func:`build_paper` is what ``make reproduce`` calls after the notebooks.
"""

from stemprover.paper.build import build_paper, generate

__all__ = ["build_paper", "generate"]
