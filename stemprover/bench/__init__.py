"""Measured cost: training throughput, test clips, and scaling over processes.

Never imports ``stages`` or ``report``.
"""
