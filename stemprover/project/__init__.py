"""Profiles, folders and runtime choices (config and its common keys, stage inputs, paths, seed,
threads, provenance, notebook setup).

Imports nothing of the project but ``errors`` and ``constants``.
"""
