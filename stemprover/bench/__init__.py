"""Measured cost: training throughput, test clips, scaling over processes, start-up time
and the mixture projection's memory against song length.

Never imports ``stages`` or ``report``.
"""
