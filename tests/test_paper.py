"""The paper's numbers, claims, tables and README headline come from the results, exactly."""

import re
import shutil

import pandas as pd
import pytest
import results_fixture as fx

from stemprover import figures
from stemprover.errors import StemproverError
from stemprover.paper import build, claims, data, numbers
from stemprover.paths import repo_root
from stemprover.readme import END, START, update_readme

NEWCOMMAND = re.compile(r"^\\newcommand\{\\([^}]*)\}\{(.*)\}$")


@pytest.fixture
def root(tmp_path, monkeypatch):
    source = repo_root()
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    shutil.copytree(source / "notebooks" / "params", tmp_path / "notebooks" / "params")
    (tmp_path / "paper").mkdir()
    for name in ("main.tex", "refs.bib", "sections"):
        src = source / "paper" / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / "paper" / name)
    return tmp_path


def read_macros(path):
    macros = {}
    for line in path.read_text().splitlines():
        if line.startswith("%"):
            continue
        match = NEWCOMMAND.match(line)
        assert match, f"not a \\newcommand line: {line}"
        assert match.group(1) not in macros, f"duplicate macro {match.group(1)}"
        macros[match.group(1)] = match.group(2)
    return macros


def test_macro_names_are_tex_control_words():
    assert numbers.macro_name("synthetic", "vocals", "stemprover@25", "si_sdr") == (
        "spSyntheticVocalsStemproverTwentyFiveSiSdr"
    )
    assert numbers.macro_name("overlap", "0.25") == "spOverlapZeroPointTwentyFive"
    assert numbers.number_words(1024) == "OneThousandTwentyFour"
    with pytest.raises(StemproverError):
        numbers.macro_name("@@")


def test_numbers_are_typeset_with_true_minus_and_na():
    assert numbers.fmt(-1.234, 2) == r"\ensuremath{-}1.23"
    assert numbers.fmt(2.5, 2, signed=True) == "+2.50"
    assert numbers.fmt(-0.001, 2, signed=True) == "0.00"
    assert numbers.fmt(float("nan")) == r"\textit{n/a}"
    assert numbers.fmt(12000) == "12{,}000"


def test_numbers_tex_carries_the_aggregate_values(root):
    fx.write_results(root, "cpu")
    build.generate("cpu")
    macros = read_macros(root / "paper/generated/numbers.tex")
    assert all(re.fullmatch(r"[A-Za-z]+", name) for name in macros)
    for testset in fx.TESTSETS:
        for stem in fx.STEMS:
            for system in fx.SYSTEMS:
                name = numbers.macro_name(testset, stem, system, "si_sdr")
                assert macros[name] == f"{fx.value(testset, stem, system, 'si_sdr'):.2f}"
    gain = fx.value("real", "bass", "regression", "sdr") - fx.value(
        "real", "bass", "identity", "sdr"
    )
    assert macros["spGainRealBassRegressionSdr"] == f"+{gain:.2f}"
    assert macros["spGainRealBassRegressionSdrLow"] == f"+{gain - 0.3:.2f}"
    # Every track gains the same, so the stem-averaged gain and its CI are exact.
    assert macros["spAvgGainSyntheticStemproverFourSiSdr"] == "+2.50"
    assert macros["spAvgGainSyntheticStemproverFourSiSdrLow"] == "+2.50"
    assert macros["spAvgGainSyntheticStemproverFourSiSdrN"] == "4"
    assert macros["spRtfStepsTwentyFive"] == "12.500"
    assert macros["spProfile"] == "cpu"
    assert macros["spCfgCommonSampleRate"] == "22050"
    assert macros["spDataNPairs"] == "120"


def test_targets_follow_the_numbers(root):
    fx.write_results(root, "cpu")
    found = {t.key: t for t in claims.targets(data.load("cpu"))}
    assert found["sisdr"].status == "met"  # +2.5 dB >= +2 dB
    assert found["pesq"].status == "met"  # +0.25 >= +0.2
    assert found["phase"].status == "met"
    assert found["regression"].status == "met"
    assert found["rtf"].status == "not measured"  # device "cpu", not an H100
    assert found["cost"].status == "missed"  # 4.0 > 0.5
    assert found["cost"].measured.startswith("4.00")


def test_claims_say_when_regression_wins(root):
    res = fx.write_results(root, "cpu")
    path = res / "05_evaluation" / "aggregate.csv"
    agg = pd.read_csv(path)
    for column in ("mean", "ci_low", "ci_high"):
        agg.loc[agg.system == "regression", column] += 3.0  # now 2 dB above StemProver@4
    agg.to_csv(path, index=False)
    (res / "05_evaluation" / "per_track.csv").unlink()
    loaded = data.load("cpu", strict=False)
    text = claims.claims(loaded, claims.targets(loaded))["spClaimRegression"]
    assert "on SI-SDR the regression U-Net is ahead by 2.00~dB" in text
    assert "does not hold in this run" in text
    assert {t.key: t.status for t in claims.targets(loaded)}["regression"] == "missed"


def test_log_problems_raise():
    with pytest.raises(StemproverError, match="undefined reference: fig:x"):
        build.check_log(
            "LaTeX Warning: Reference `fig:x' on page 2 undefined on input line 4.\n"
            "LaTeX Warning: There were undefined references."
        )
    with pytest.raises(StemproverError, match="undefined citation: nobody2020"):
        build.check_log("LaTeX Warning: Citation `nobody2020' on page 1 undefined on input line 9.")
    with pytest.raises(StemproverError, match="missing figure: ablations"):
        build.check_log("Package stemprover Warning: Figure ablations missing on input line 3.")
    with pytest.raises(StemproverError, match="no bibliography entry for ghost"):
        build.check_log("", 'Warning--I didn\'t find a database entry for "ghost"')
    build.check_log("Overfull \\hbox (1.0pt too wide) in paragraph at lines 2--7")


def test_missing_figure_stops_the_build(root):
    fx.write_results(root, "cpu")
    (root / "figures").mkdir()
    for name in figures.PRODUCERS:  # the check runs before LaTeX: any file will do
        if name != "ablations":
            (root / "figures" / f"{name}.pdf").write_bytes(b"%PDF-1.4\n")
    with pytest.raises(StemproverError, match=r"missing figure\(s\) ablations"):
        build.build_paper("cpu")


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk comes with make install")
def test_smoke_paper_builds_apart_from_the_committed_paper(root):
    fx.write_results(root, "smoke")
    figures.draw_all("smoke")
    pdf = build.build_paper("smoke")
    assert pdf == root / "build/paper/smoke/main.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    assert not (root / "paper/generated").exists() and not (root / "paper/stemprover.pdf").exists()
    macros = read_macros(root / "build/paper/smoke/generated/claims.tex")
    assert "smoke" in macros["spProfileNote"]


def test_readme_headline_is_generated_between_the_markers(root):
    fx.write_results(root, "cpu")
    readme = root / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{START}\nold table\n{END}\nafter\n")
    path, profile = update_readme()
    text = path.read_text()
    assert profile == "cpu" and "old table" not in text
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    gain = "+2.50 [+2.20, +2.80]"
    assert f"| synthetic | vocals | {gain} | {gain} | 5.00 | 4 |" in text
    assert "not measured in this run" in text
    readme.write_text("no markers\n")
    with pytest.raises(StemproverError, match="headline:start"):
        update_readme("cpu")


def test_ablation_sentence_compares_each_change_with_the_reference(root):
    fx.write_results(root, "cpu")
    text = claims.claims(data.load("cpu"), [])["spClaimAblations"]
    # reference 1.0 dB; full -0.5, rank 8 -0.2, rank 16 +0.1 (see results_fixture)
    assert "reaches 1.00~dB" in text
    assert "2 lower it, most of all finetuning = full (\\ensuremath{-}0.50~dB)" in text
    assert "1 raises it, most of all lora rank = 16 (+0.10~dB)" in text
    assert "3 of the 3 changed rows lie inside" in text  # 0.5 sits on the lower bound
    assert (
        "scores 0.75~dB on the same items, so the reference setting raises SI-SDR by 0.25~dB"
        in text
    )
    assert "2 of the 3 changed rows beat the separator output" in text


def test_data_sentence_reads_the_dataset_card(root):
    fx.write_results(root, "cpu")
    text = claims.claims(data.load("cpu"), [])["spClaimData"]
    assert (
        text == "The paired dataset of this run holds 120 segment pairs (30.0~minutes of "
        "separated audio)."
    )


def test_main_test_set_comes_first_whatever_the_file_order(root):
    res = fx.write_results(root, "cpu")
    path = res / "05_evaluation" / "aggregate.csv"
    pd.read_csv(path).sort_values("testset").to_csv(path, index=False)  # as stats.aggregate does
    loaded = data.load("cpu")
    assert loaded.testsets == ["synthetic", "cross_separator", "real"]
    assert loaded.main_system == "stemprover@4"


def test_analysis_explains_a_missed_target_from_the_numbers(root):
    res = fx.write_results(root, "cpu")
    path = res / "05_evaluation" / "aggregate.csv"
    agg = pd.read_csv(path)
    lowered = agg.system.str.startswith("stemprover") & (agg.metric == "si_sdr")
    agg.loc[lowered, ["mean", "ci_low", "ci_high"]] -= 4.0  # @4: +2.5 -> -1.5 dB, @1: -3.5 dB
    agg.to_csv(path, index=False)
    for name in ("per_track.csv", "significance.csv"):  # gains then come from the means
        (res / "05_evaluation" / name).unlink()
    text = claims.claims(data.load("cpu", strict=False), [])["spClaimAnalysis"]
    assert text.startswith("StemProver (4 steps) lowers 1.50~dB the SI-SDR")
    assert (
        "The regression U-Net, trained on the same pairs with the same losses, does better (+1.50~dB)"
        in text
    )
    assert "More sampling steps" not in text  # 4 steps beat 1 step here
    assert "phase above 4~kHz gets worse" not in text
    assert "\\texttt{cpu} profile trains for minutes" in text
