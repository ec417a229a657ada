"""Stem in, clean stem out: enhance, the bridge sampler, segments and streaming, detectors, post-filter.

Never imports ``train``, ``data``, ``bench``, ``stages`` or ``report``.
"""
