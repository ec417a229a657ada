"""From ``results/`` to readers: result tables, the listening page, the README and the paper.

Reads results only; never imports ``stages``.
"""
