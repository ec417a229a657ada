"""Figures are drawn from results/ alone, carry the stored values, and go to the right folder."""

import json

import numpy as np
import pandas as pd
import pytest
import results_fixture as fx

from stemprover.errors import StemproverError
from stemprover.report import resultsio as rio
from stemprover.stages import figures


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    return tmp_path


def test_every_figure_is_drawn_with_its_inputs_recorded(root):
    fx.write_results(root, "cpu")
    write_quality_sweep(root / "results/cpu/05_evaluation/per_track.csv")
    done = figures.draw_all("cpu")
    assert done == {"made": list(figures.PRODUCERS), "skipped": [], "absent": []}
    for name in figures.PRODUCERS:
        pdf = root / "figures" / f"{name}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF")
    manifest = json.loads((root / "results/cpu/08_figures/manifest.json").read_text())
    assert manifest["figures"]["metric_vs_steps"]["inputs"] == [
        "results/cpu/05_evaluation/aggregate.csv"
    ]
    assert manifest["figures"]["training_curves"]["inputs"] == [
        "results/cpu/03_base_pretraining/train_log.csv",
        "results/cpu/04_lora_training/train_log.csv",
    ]


def test_smoke_never_writes_the_committed_figures(root):
    fx.write_results(root, "smoke")
    figures.draw_all("smoke", only=["ablations"])
    assert (root / "build/figures/smoke/ablations.pdf").is_file()
    assert not (root / "figures").exists()


def test_missing_input_skips_in_smoke_and_raises_otherwise(root, capsys):
    fx.write_results(root, "smoke", skip=("06",))
    done = figures.draw_all("smoke", only=["ablations", "training_curves"])
    assert done == {"made": ["training_curves"], "skipped": ["ablations"], "absent": []}
    assert "skipped ablations: missing input results/smoke/06_ablations/ablations.csv" in (
        capsys.readouterr().out
    )
    fx.write_results(root, "cpu", skip=("07",))
    with pytest.raises(StemproverError, match="figure performance: missing input"):
        figures.draw_all("cpu", only=["performance"])


def test_metric_vs_steps_plots_the_stored_means(root, monkeypatch):
    fx.write_results(root, "cpu")
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    figures.metric_vs_steps("cpu", figures.FiguresConfig(), root)
    axes = drawn["metric_vs_steps"].axes
    vocals_sisdr = axes[0]  # row 0 = si_sdr, column 0 = vocals
    steps_line = vocals_sisdr.get_lines()[0]
    assert list(steps_line.get_xdata()) == [1, 2, 4]
    expected = [fx.value("synthetic", "vocals", f"stemprover@{k}", "si_sdr") for k in (1, 2, 4)]
    np.testing.assert_allclose(steps_line.get_ydata(), expected)
    identity = vocals_sisdr.get_lines()[1]
    assert identity.get_label() == "separator output"
    np.testing.assert_allclose(
        identity.get_ydata(), fx.value("synthetic", "vocals", "identity", "si_sdr")
    )


def test_ablation_figure_adds_the_paired_panel_when_the_grid_has_one(root, monkeypatch):
    res = fx.write_results(root, "cpu")
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.__setitem__(name, fig))
    figures.ablations("cpu", figures.FiguresConfig(), root)
    assert len(drawn["ablations"].axes) == 1  # the fixture's grid has no paired columns
    path = res / "06_ablations" / "ablations.csv"
    table = pd.read_csv(path)
    table["delta_si_sdr"] = table["si_sdr"] - 1.0
    table.loc[table["name"] == "reference", "delta_si_sdr"] = np.nan
    table["delta_ci_low"] = table["delta_si_sdr"] - 0.1
    table["delta_ci_high"] = table["delta_si_sdr"] + 0.1
    table.to_csv(path, index=False)
    figures.ablations("cpu", figures.FiguresConfig(), root)
    left, right = drawn["ablations"].axes
    widths = [bar.get_width() for bar in right.patches]
    np.testing.assert_allclose(widths,
                               np.nan_to_num(table["delta_si_sdr"].to_numpy()))
    assert "paired" in right.get_xlabel()


def test_spectrogram_example_phase_error_is_known(tmp_path):
    sample_rate, n = 8000, 8000
    t = np.arange(n) / sample_rate
    clean = np.sin(2 * np.pi * 500 * t).astype(np.float32)
    path = tmp_path / "example.npz"
    # Scaling keeps the phase (error 0); negation shifts it by pi (error pi).
    np.savez(path, clean=clean, separated=0.5 * clean, enhanced=-clean, sample_rate=sample_rate)
    example = rio.load_spectrogram_example(path, sample_rate, n_fft=256, hop_length=64)
    np.testing.assert_allclose(np.nanmax(example.phase_error["separated"]), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.nanmin(example.phase_error["enhanced"]), np.pi, atol=1e-4)
    audible = example.clean_db > example.clean_db.max() - 60.0
    difference = (example.db["clean"] - example.db["separated"])[audible]
    np.testing.assert_allclose(difference, 20 * np.log10(2), atol=1e-3)
    assert example.seconds == pytest.approx(1.0, abs=0.02)


def test_result_names_are_read_loosely():
    assert rio.system_steps("stemprover@25") == 25
    assert rio.system_steps("regression") is None
    assert rio.system_label("stemprover@1") == "StemProver (1 step)"
    assert rio.metric_label("SI-SDR") == rio.metric_label("si_sdr") == "SI-SDR (dB)"


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100, 48000])
def test_detector_time_axis_matches_the_detectors(sample_rate):
    from stemprover.dsp.spectral import stft_size

    expected = (stft_size(sample_rate) // 4) / sample_rate
    assert figures.detector_hop_seconds(sample_rate) == expected


def test_budget_curve_draws_each_phase_on_the_training_minutes(root, monkeypatch):
    fx.write_results(root, "cpu")
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    _, inputs = figures.budget_curve("cpu", figures.FiguresConfig(), root)
    assert [p.relative_to(root).as_posix() for p in inputs] == [
        "results/cpu/03_base_pretraining/budget_curve.csv",
        "results/cpu/04_lora_training/budget_curve.csv",
    ]
    lines = {line.get_label(): line for line in drawn["budget_curve"].axes[0].get_lines()}
    for phase, minutes in fx.BUDGET_MINUTES.items():
        line = lines[figures.PHASE_LABELS[phase]]
        np.testing.assert_allclose(line.get_xdata(), minutes)
        gains = [g for stage in fx.BUDGET.values() for p, _, _, g in stage if p == phase]
        np.testing.assert_allclose(line.get_ydata(), gains)
    assert lines[figures.PHASE_LABELS["regression"]].get_linestyle() == "--"


def test_budget_curve_adds_a_panel_per_artifact_type_when_logged(root, monkeypatch):
    fx.write_results(root, "cpu")
    path = root / "results/cpu/04_lora_training/budget_curve.csv"
    curve = pd.read_csv(path)
    logged = curve["phase"].isin(["general", "regression"])
    curve["gain_bleed"] = np.where(logged, curve["gain"] + 1.0, np.nan)
    curve.to_csv(path, index=False)
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    figures.budget_curve("cpu", figures.FiguresConfig(), root)
    lines = {line.get_label(): line for line in drawn["budget_curve"].axes[1].get_lines()}
    general = lines[f"bleed: {figures.PHASE_LABELS['general']}"]
    np.testing.assert_allclose(general.get_xdata(), fx.BUDGET_MINUTES["general"])
    np.testing.assert_allclose(general.get_ydata(), curve.loc[curve["phase"] == "general", "gain"] + 1)
    assert lines[f"bleed: {figures.PHASE_LABELS['regression']}"].get_linestyle() == "--"


def test_budget_curve_needs_the_lora_stage_curve(root):
    fx.write_results(root, "cpu", skip=("budget",))
    with pytest.raises(StemproverError, match="figure budget_curve: missing input"):
        figures.draw_all("cpu", only=["budget_curve"])


# ------------------------------------------------------------------ quality sweep, axes
SWEEP_GAIN = {"bridge": -1.0, "postfilter": 0.5, "stemprover@1": 2.0, "regression": 1.0}
SWEEP_INPUT = {0.3: 1.0, 0.6: 7.0, 0.9: 13.0}  # severity -> the identity's SI-SDR (dB)


def write_quality_sweep(path, excerpts=("a", "b", "c")):
    """Append quality-sweep rows: inputs at known SI-SDR, each system a known gain above it
    (plus a per-excerpt offset that cancels in the mean over excerpts)."""
    rows = []
    for k, excerpt in enumerate(excerpts):
        for severity, source in SWEEP_INPUT.items():
            track = f"{excerpt}@degraded:bleed:severity={severity}"
            for stem in ("vocals", "bass"):
                wobble = (k - 1) * 0.5  # -0.5, 0, +0.5: the mean over the excerpts is 0
                rows.append(("quality_sweep", stem, "identity", track, "x", "si_sdr", source))
                for system, gain in SWEEP_GAIN.items():
                    value = source + gain + wobble
                    rows.append(("quality_sweep", stem, system, track, "x", "si_sdr", value))
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    sweep = pd.DataFrame(rows, columns=["testset", "stem", "system", "track", "separator",
                                        "metric", "value"])
    pd.concat([table, sweep], ignore_index=True).to_csv(path, index=False)


def test_gain_vs_input_plots_each_bin_and_a_zero_line(root, monkeypatch):
    fx.write_results(root, "cpu")
    write_quality_sweep(root / "results/cpu/05_evaluation/per_track.csv")
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    cfg = figures.FiguresConfig(gain_bin_edges=[0.0, 6.0, 12.0, 18.0])
    figures.gain_vs_input("cpu", cfg, root)
    axes = drawn["gain_vs_input"].axes
    assert [ax.get_title() for ax in axes] == ["all stems", "vocals", "bass"]
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    one_step = lines[rio.system_label("stemprover@1")]
    np.testing.assert_allclose(one_step.get_xdata(), [3.0, 9.0, 15.0])
    np.testing.assert_allclose(one_step.get_ydata(), [2.0] * 3)
    np.testing.assert_allclose(lines[rio.system_label("bridge")].get_ydata(), [-1.0] * 3)
    zero = [line for line in axes[0].get_lines() if list(line.get_ydata()) == [0.0, 0.0]]
    assert zero, "the zero line is drawn"


def test_gain_vs_input_is_absent_without_the_sweep_in_every_profile(root):
    fx.write_results(root, "cpu")
    stale = root / "figures" / "gain_vs_input.pdf"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"%PDF old")
    done = figures.draw_all("cpu", only=["gain_vs_input"])  # cpu is strict: absent is no error
    assert done == {"made": [], "skipped": [], "absent": ["gain_vs_input"]}
    manifest = json.loads((root / "results/cpu/08_figures/manifest.json").read_text())
    assert "no quality_sweep test set" in manifest["absent"]["gain_vs_input"]
    assert not stale.exists()


def test_a_log_axis_over_non_positive_data_is_refused():
    plt = figures._plt()
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.5, -0.2, 0.1])
    ax.set_yscale("log")
    with pytest.raises(figures.LogAxisError, match="panel 1 has a log y axis"):
        figures.check_log_axes(fig)
    ax.set_yscale("symlog")
    figures.check_log_axes(fig)
    fig, ax = plt.subplots()  # an axhline's x is in axes units: 0 there is not data
    ax.plot([1, 10], [1, 2])
    ax.axhline(1.5)
    ax.fill_between([1, 10], [0.5, 1], [2, 3])
    ax.set_xscale("log")
    figures.check_log_axes(fig)
    ax.bar([1, 2], [-1.0, 2.0])  # bars from 0 on a log y axis
    ax.set_yscale("log")
    with pytest.raises(figures.LogAxisError):
        figures.check_log_axes(fig)


def test_a_log_axis_over_non_positive_data_fails_the_run_even_in_smoke(root, monkeypatch):
    fx.write_results(root, "smoke")

    def bad(profile, cfg, out_dir):
        fig, ax = figures._plt().subplots()
        ax.plot([1, 2], [-1.0, 1.0])
        ax.set_yscale("log")
        return figures._save(fig, out_dir, "bad"), []

    monkeypatch.setitem(figures.PRODUCERS, "bad", bad)
    with pytest.raises(StemproverError, match="figure bad: .*non-positive"):
        figures.draw_all("smoke", only=["bad"])


def test_training_curves_with_negative_losses_use_a_linear_or_symlog_axis(root, monkeypatch):
    fx.write_results(root, "cpu")
    path = root / "results/cpu/03_base_pretraining/train_log.csv"
    log = pd.read_csv(path)
    log["loss"] = np.linspace(2.0, -30.0, len(log))  # an SNR loss in dB goes negative
    log.to_csv(path, index=False)
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    figures.training_curves("cpu", figures.FiguresConfig(), root)
    first, second = drawn["training_curves"].axes
    assert first.get_yscale() == "linear"
    assert second.get_yscale() == "log"  # 04's loss stays positive over a decade
    figures.check_log_axes(drawn["training_curves"])


def test_performance_log_axis_labels_more_than_one_tick(root, monkeypatch):
    res = fx.write_results(root, "cpu")
    path = res / "07_performance" / "summary.json"
    summary = json.loads(path.read_text())
    summary["rtf"] = {"1": 0.12, "2": 0.2, "4": 0.35}  # less than a decade below real time
    summary["separator_rtf"] = 0.7
    path.write_text(json.dumps(summary))
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.setdefault(name, fig))
    figures.performance("cpu", figures.FiguresConfig(), root)
    ax = drawn["performance"].axes[0]
    fig = drawn["performance"]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    labels = [t.get_text() for t in ax.get_yticklabels()
              if t.get_text() and low <= t.get_position()[1] <= high]
    assert len(labels) >= 2, labels


def test_the_spectrogram_title_says_whether_it_shows_the_default(root, monkeypatch):
    res = fx.write_results(root, "cpu")
    record = res / "05_evaluation" / "evaluation.json"
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, name: drawn.__setitem__(name, fig))
    with np.load(res / "05_evaluation" / "spectrograms.npz") as data:
        shown = rio.system_steps(str(data["system"]))
    record.write_text(json.dumps({"default_steps": shown}))
    figures.spectrograms("cpu", figures.FiguresConfig(), root)
    assert f"(the default: {shown} step" in drawn["spectrograms"]._suptitle.get_text()
    record.write_text(json.dumps({"default_steps": shown + 1}))
    figures.spectrograms("cpu", figures.FiguresConfig(), root)
    assert "not the default" in drawn["spectrograms"]._suptitle.get_text()
