"""The one plotting style of the project: every figure, notebook plot and listening-page image.

    from stemprover.report.style import pyplot
    plt = pyplot()          # Agg backend, ``style.mplstyle`` applied
"""

from __future__ import annotations

from pathlib import Path

STYLE = Path(__file__).with_name("style.mplstyle")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend with the project style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use(str(STYLE))
    return plt
