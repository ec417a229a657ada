"""Stem in, clean stem out: enhance, the bridge sampler, segments and streaming, detectors,
post-filter and the mixture projection of a song's four stems.

Never imports ``train``, ``data``, ``bench``, ``stages`` or ``report``.
"""
