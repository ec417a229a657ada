"""One module per notebook (phase_analysis ... figures) and ``reproduce``, which runs them in order.

May import every other folder; nothing else imports ``stages``.
"""
