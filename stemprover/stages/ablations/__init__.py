"""The ablation grid of notebook 06: one claim of the paper per row, every row on one budget.

    rows = grid(AblationConfig())                    # the rows, without running anything
    table = run_ablations(cfg, "cpu", out_dir)        # train, score, write the files

Every training row starts from 03's pretrained base (the rows that test training from scratch,
full fine-tuning, or a network that cannot load that base are the exceptions, see
:mod:`.training`), trains for the same wall time (``row_minutes``, capped at ``row_steps``
optimizer steps; the steps each row reached are recorded), and never sees the pairs of the
held-out separators (``heldout_separators``, labels of 02's pairs: the leave-one-separator-out
validation). The scoring items are those separators' valid-split pairs. The reference must
gain ``target_gain_db`` (1 dB) over the separator output on them for the grid to test
anything; ``summary.json`` records whether it did.

The rows and the claims they test (reference first; every row is paired with the reference
unless said otherwise):

=====================  ===========================================================
reference              the bridge from the separated stem, LoRA adapters and control
                       branch on the frozen base (04's order), phase-aware losses,
                       ``complex`` pictures, ``reference_steps`` steps, ``adapters``
                       (05's: ``general``), no projection
formulation=sdedit     the bridge against SDEdit (noise-to-data from the stem noised
                       halfway, 4 steps), from a denoising base of its own
formulation=regression the bridge against the regression U-Net of the same size (04's)
finetuning=full        LoRA on a frozen base against training every base weight
finetuning=scratch     against training every weight from a random start
control=concat         the phase-aware zero-convolution branch against the condition
                       concatenated as extra input channels
representation=        complex pictures against compressed magnitude (the input's
magnitude              phase reused), from a base of its own
phase_losses=off       the phase-aware loss terms against the profile's loss without them
adapters=router        the typed adapters mixed by the artifact detectors (inference only)
                       against ``general``
projection=none,       the mixture projection of the four stems before / after the model
before, after          against none (inference only; on the track-level items, since the
                       pairs of one segment rarely hold all four stems: ``before`` and
                       ``after`` are paired with ``projection=none``, the reference model
                       on those items)
steps=2, 4             more sampling steps (inference only)
=====================  ===========================================================

Outputs, in ``results/<profile>/06_ablations/``:

* ``ablations.csv`` (:data:`.table.TABLE_COLUMNS`): ``name, factor, setting``; the row's
  ``si_sdr`` (dB) with ``si_sdr_ci_low``/``si_sdr_ci_high`` (95%, bootstrap over tracks),
  ``phase_dev`` (rad), ``lsd`` (dB), ``n`` (items); ``train_seconds`` (its training, without
  the pretraining of a base); the paired ``delta_si_sdr, delta_ci_low, delta_ci_high,
  delta_p_value`` (the row minus its ``versus`` row, item by item; the interval is a bootstrap
  over tracks, the p-value the Wilcoxon test of the tracks' mean differences); then the
  columns added to that contract: ``versus`` (the row paired with: ``reference``, or
  ``projection=none`` for the projection rows; empty for none), ``items`` (``pairs`` or
  ``tracks``), ``train_steps`` (optimizer steps reached within the budget), ``n_tracks``,
  ``resolved`` (True when the paired interval excludes 0) and ``direction`` (``higher``,
  ``lower`` or ``equal``: the sign of ``delta_si_sdr``). The first line, ``identity``, is the
  separator output on the pairs; its paired difference is the identity minus the reference.
* ``ablation_items.csv``: ``name, item, si_sdr, track``, every row's score on each item.
* ``summary.json``: the held-out separators, the budget, the reference's gain over the
  separator output (``reference_gain_db``, its interval, ``reached_target``) and the steps
  of every row.
* ``grid.json``: every row's settings.
"""

from stemprover.stages.ablations.grid import FACTORS, AblationConfig, Row, grid, row_budget
from stemprover.stages.ablations.run import reference_gain, rows_json, run_ablations
from stemprover.stages.ablations.table import (
    ITEM_COLUMNS,
    PAIRED_COLUMNS,
    SCORE_COLUMNS,
    TABLE_COLUMNS,
    clustered_bootstrap,
    clustered_paired_test,
    items_table,
    run_grid,
    with_paired,
)

__all__ = [
    "FACTORS", "ITEM_COLUMNS", "PAIRED_COLUMNS", "SCORE_COLUMNS", "TABLE_COLUMNS",
    "AblationConfig", "Row", "clustered_bootstrap", "clustered_paired_test", "grid",
    "items_table", "reference_gain", "row_budget", "rows_json", "run_ablations", "run_grid",
    "with_paired",
]
