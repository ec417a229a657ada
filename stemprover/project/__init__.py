"""Profiles, folders and runtime choices (config, paths, seed, threads, provenance, notebook setup).

Imports nothing of the project but ``errors`` and ``constants``.
"""
