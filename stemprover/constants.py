"""Names shared across StemProver: stems, artifact types and adapters."""

STEMS = ("vocals", "drums", "bass", "other")
"""The MUSDB18 stems, in MUSDB order."""

ARTIFACTS = ("hf_loss", "musical_noise", "bleed", "phase_smear")
"""Artifact types that the degraded oracles produce and the detectors score."""

ADAPTERS = ("hf_loss", "musical_noise", "bleed", "general")
"""One LoRA adapter per artifact type; phase smear is handled by ``general``."""

SPLITS = ("train", "valid", "test")

CORPUS_SAMPLE_RATE = 44100
"""Rendered corpus and real stems are stereo at 44.1 kHz; the profile sets the model rate."""

FAMILIES = ("degraded", "zoo", "classical", "neural")
"""Separator families of the training pairs: the unit that leave-one-out validation holds out."""
