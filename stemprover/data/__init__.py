"""Training pairs and test sets built from the corpus and the separators.

Never imports ``train``, ``bench``, ``stages`` or ``report``; pairs may use ``inference``'s
mixture projection.
"""
