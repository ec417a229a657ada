"""The rows of the ablation grid: what each changes from the reference, and what it is paired with.

    rows = grid(AblationConfig())      # the reference first, then one row per changed setting
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stemprover.errors import StemproverError
from stemprover.project.config import Common

FACTORS = (
    "formulation",
    "finetuning",
    "control",
    "representation",
    "phase_losses",
    "adapters",
    "projection",
    "steps",
)
"""The factors in the order of the table; each tests one claim of the paper (see the package
docstring)."""

REFERENCE = "reference"
TRACKS_REFERENCE = "projection=none"
"""The reference model scored on the track-level items: what the projection rows are paired
with."""


@dataclass
class AblationConfig(Common):
    seed: int = 0
    factors: list[str] = field(default_factory=lambda: list(FACTORS))
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides: 03's base's own
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig of every row (as in 04)
    row_minutes: float = 0.0  # wall-time budget of every training row; 0: the step cap alone
    row_steps: int = 6  # optimizer-step cap of every training row (smoke: the budget itself)
    adapter_share: float = 0.5  # of the budget, spent on the three specialised adapters (04's order)
    own_base_steps: int = 2  # pretraining of a base that cannot be 03's (SDEdit, magnitude)
    general_share: float = 0.0  # general phase: share of pairs conditioned on `general` (as 04)
    batch_size: int = 2
    learning_rate: float = 1e-3  # as 04
    reference_steps: int = 1  # sampling steps of the reference (a bridge's default)
    steps: list[int] = field(default_factory=lambda: [2, 4])  # inference-only rows
    projections: list[str] = field(default_factory=lambda: ["before", "after"])  # against none
    adapters: str = "general"  # the reference's adapter at inference, as 05
    # separator labels of 02's pairs (a name holds out its snapshots, name@step, too): left
    # out of every row's training; their valid pairs are the scoring items
    heldout_separators: list[str] = field(default_factory=lambda: ["openunmix"])
    max_items: int = 0  # scoring pairs, spread evenly over the held-out valid pairs; 0: all
    track_seconds: float = 1.0  # projection rows: excerpt of each corpus valid track, s
    n_tracks: int = 1  # projection rows: corpus valid tracks
    target_gain_db: float = 1.0  # what the reference must gain over the separator output
    device: str = "cpu"
    torch_threads: int = 1  # CPU threads; on shared cores one thread avoids spin-waits (0: all)
    workers: int = 1  # processes that train the grid's models side by side (torch_threads each)
    n_bootstrap: int = 1000
    # inputs ("": this profile's own, filled in by project.inputs.resolve_inputs)
    corpus_dir: str = ""  # the corpus 01 renders: the projection rows' track-level items
    separator_weights: str = ""  # 01's trained neural separators
    manifest: str = ""  # 02's pairs: every row trains on them, less the held-out separators
    base: str = ""  # 03's base: the start of every row but scratch and the own-base rows


@dataclass(frozen=True)
class Row:
    """One row of the grid.

    Attributes:
        name: ``"reference"`` or ``"<factor>=<setting>"``.
        factor, setting: What this row changes (``"reference"`` for the reference).
        model: ModelConfig overrides.
        train: ``finetuning`` (``lora``, ``full``, ``scratch`` or ``regression``) and
            ``phase_losses``.
        infer: ``steps`` (None: the model's own), ``adapters`` and ``projection``.
        items: ``"pairs"`` (the held-out valid pairs) or ``"tracks"`` (the held-out
            separator's output of whole corpus valid tracks, all four stems).
        versus: The row this one is paired with ("" for none).
    """

    name: str
    factor: str
    setting: str
    model: tuple[tuple[str, Any], ...] = ()
    train: tuple[tuple[str, Any], ...] = ()
    infer: tuple[tuple[str, Any], ...] = ()
    items: str = "pairs"
    versus: str = REFERENCE

    @property
    def train_key(self) -> tuple:
        """Rows with equal keys share one trained model."""
        return (self.model, self.train)

    @property
    def own_base(self) -> bool:
        """Whether the row's network cannot load 03's base (another formulation or picture)."""
        return bool(dict(self.model).keys() & {"formulation", "representation"})

    def options(self) -> dict[str, Any]:
        return {"model": dict(self.model), "train": dict(self.train), "infer": dict(self.infer),
                "items": self.items, "versus": self.versus}


REFERENCE_TRAIN = {"finetuning": "lora", "phase_losses": True}


def _frozen(values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(values.items()))


def _settings(cfg: AblationConfig) -> dict[str, list[tuple[str, dict[str, dict[str, Any]]]]]:
    """Each factor's settings besides the reference, as changes to the reference's parts."""
    return {
        # SDEdit samples at its own defaults (4 steps from the stem noised halfway)
        "formulation": [("sdedit", {"model": {"formulation": "sdedit"}, "infer": {"steps": None}}),
                        ("regression", {"train": {"finetuning": "regression"},
                                        "infer": {"steps": None}})],
        "finetuning": [("full", {"train": {"finetuning": "full"}}),
                       ("scratch", {"train": {"finetuning": "scratch"}})],
        "control": [("concat", {"model": {"control": "concat"}})],
        "representation": [("magnitude", {"model": {"representation": "magnitude"}})],
        "phase_losses": [("off", {"train": {"phase_losses": False}})],
        "adapters": [("router", {"infer": {"adapters": "auto"}})],
        "projection": [(p, {"infer": {"projection": p}}) for p in cfg.projections if p != "none"],
        "steps": [(str(s), {"infer": {"steps": s}}) for s in cfg.steps
                  if s != cfg.reference_steps],
    }


def grid(cfg: AblationConfig) -> list[Row]:
    """The rows for ``cfg.factors``: the reference first, then each changed setting once.

    The projection rows come with ``projection=none``, the reference model on the same
    track-level items, which they are paired with.
    """
    unknown = sorted(set(cfg.factors) - set(FACTORS))
    if unknown:
        raise StemproverError(f"unknown ablation factor(s) {', '.join(unknown)}; known: {FACTORS}")
    infer = {"steps": cfg.reference_steps, "adapters": cfg.adapters, "projection": "none"}
    parts = {"model": {}, "train": REFERENCE_TRAIN, "infer": infer}
    rows = [Row(REFERENCE, REFERENCE, REFERENCE, (), _frozen(REFERENCE_TRAIN), _frozen(infer),
                versus="")]
    settings = _settings(cfg)
    for factor in FACTORS:
        if factor not in cfg.factors:
            continue
        if factor == "projection":
            rows.append(Row(TRACKS_REFERENCE, factor, "none", (), _frozen(REFERENCE_TRAIN),
                            _frozen(infer), items="tracks", versus=""))
        for setting, changes in settings[factor]:
            changed = {part: dict(values) | changes.get(part, {}) for part, values in parts.items()}
            tracks = factor == "projection"
            rows.append(Row(f"{factor}={setting}", factor, setting,
                            *(_frozen(changed[p]) for p in ("model", "train", "infer")),
                            items="tracks" if tracks else "pairs",
                            versus=TRACKS_REFERENCE if tracks else REFERENCE))
    return rows


def row_budget(cfg: AblationConfig) -> dict[str, float]:
    """How a training row spends its budget (minutes and steps) between 04's phases.

    Returns:
        ``general_steps``, ``adapter_steps`` (each of the three specialised adapters),
        ``general_minutes`` and ``adapter_minutes``; the phases add up to ``row_steps``
        and ``row_minutes`` (0 minutes: no time cap).
    """
    if not 0.0 <= cfg.adapter_share < 1.0:
        raise StemproverError(f"adapter_share must be in [0, 1), got {cfg.adapter_share}")
    adapter_steps = int(round(cfg.row_steps * cfg.adapter_share / 3))
    adapter_minutes = cfg.row_minutes * cfg.adapter_share / 3
    return {"general_steps": cfg.row_steps - 3 * adapter_steps, "adapter_steps": adapter_steps,
            "general_minutes": cfg.row_minutes - 3 * adapter_minutes,
            "adapter_minutes": adapter_minutes}
