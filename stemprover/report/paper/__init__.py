"""The paper: numbers, claims and tables generated from ``results/``, built with latexmk.

    python -m stemprover.report.paper --profile cpu        # `make paper PROFILE=cpu`
    python -m stemprover.report.paper --readme             # README headline table from results/

:func:`build_paper` is what ``make reproduce`` calls after the notebooks; like all of ``report``
it reads ``results/`` and never imports ``stages``.
"""

from stemprover.report.paper.build import build_paper, generate

__all__ = ["build_paper", "generate"]
