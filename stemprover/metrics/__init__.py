"""Signal metrics (SI-SDR, LSD, phase), BSSEval through museval, and bootstrap statistics.

Imports ``dsp`` and ``project`` only.
"""
