"""Training under Hugging Face accelerate: the loop, steps, losses, data, validation, release.

Never imports ``stages`` or ``report``; the 03 and 04 stages drive it.
"""
