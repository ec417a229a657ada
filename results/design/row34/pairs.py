"""Design study row 34, step 1: the pairs of the zoo study (into build/cache/cpu/row34).

    .venv/bin/python results/design/row34/pairs.py

Sixteen training tracks of the cpu corpus: the typed degraded oracles (one severity each) and
HPSS, as in the cpu profile's pairs, plus five draws of the parametric zoo per track, 15 % of
them the clean stem itself.
"""

from stemprover.data.pairs import PairsConfig, build_pairs
from stemprover.project.paths import cache_dir

CONFIG = PairsConfig(
    sample_rate=22050, n_fft=512, hop_length=128, segment_seconds=1.0, overlap=0.5,
    severities=[0.3, 0.6, 0.9], severities_per_track=1, blind_separators=["hpss"],
    splits=["train"], max_tracks_per_split=16, max_segments=4, zoo_draws=5, zoo_severity_power=2.0, identity_share=0.15,
)

if __name__ == "__main__":
    print(build_pairs(CONFIG, cache_dir("cpu", "corpus"), cache_dir("cpu", "row34", "pairs")))
