"""One module per notebook (phase_analysis ... figures); ``launch`` runs 03 and 04 as scripts under
a launcher, and ``reproduce`` runs the notebooks in order.

May import every other folder; only the command line (``cli``) may import it.
"""
