"""Training pairs and test sets built from the corpus and the separators.

Never imports ``train``, ``inference``, ``bench``, ``stages`` or ``report``.
"""
