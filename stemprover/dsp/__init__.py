"""Signals and STFT pictures: audio I/O and checks, spectral representations, phase and band reports.

Imports nothing of the project but ``errors`` and ``constants``.
"""
