"""Output names of ``stemprover enhance``: the default, and ``--filename`` templates that
may use only their four fields as they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stemprover.errors import StemproverError
from stemprover.inference.naming import check_template, is_own_output, output_path


@pytest.mark.parametrize("stem,filename,expected", [
    (None, None, "out/vocals.enhanced.wav"),
    (None, "{folder}/{track}.{ext}", "out/song/vocals.wav"),
    (None, "{stem}-{track}.wav", "out/vocals-vocals.wav"),
    (None, "{{{track}}}.wav", "out/{vocals}.wav"),  # doubled braces are literal braces
])
def test_names_of_plain_files(stem, filename, expected):
    assert output_path("sep/song/vocals.wav", "out", stem, filename) == Path(expected)


def test_names_of_stem_files():
    track = "sep/Song - One.stem.mp4"
    assert output_path(track, "out", "bass") == Path("out/Song - One.bass.enhanced.wav")
    assert output_path(track, "out", "bass", "{track}/{stem}.{ext}") == Path(
        "out/Song - One/bass.wav")


@pytest.mark.parametrize("template,shown", [
    ("{track.upper}.wav", "{track.upper}"),
    ("{track[0]}.wav", "{track[0]}"),
    ("{track.__class__.__name__}.wav", "{track.__class__.__name__}"),
    ("{track!r}.wav", "{track!r}"),
    ("{track:>30}.wav", "{track:>30}"),
    ("{stem!s:.3}.wav", "{stem!s:.3}"),
    ("{0}.wav", "{0}"),
    ("{}.wav", "{}"),
    ("{nope}.wav", "{nope}"),
])
def test_only_plain_fields(template, shown):
    with pytest.raises(StemproverError, match="unknown field") as caught:
        check_template(template)
    assert shown in str(caught.value) and "{track}, {stem}, {folder}, {ext}" in str(caught.value)
    with pytest.raises(StemproverError):
        output_path("v.wav", "out", filename=template)


@pytest.mark.parametrize("template,message", [
    ("{track", "--filename '{track': an unpaired brace"), ("x}.wav", "unpaired brace"),
    ("", "empty"),
    ("../{track}.wav", "inside the output folder"), ("/tmp/{track}.wav", "inside"),
    ("{track}.flac", "WAV"),
])
def test_bad_templates(template, message):
    with pytest.raises(StemproverError, match=re.escape(message)):
        output_path("v.wav", "out", filename=template)


def test_own_outputs():
    assert is_own_output("x/a.enhanced.wav") and is_own_output("A.ENHANCED.WAV")
    assert not is_own_output("a.wav") and not is_own_output("enhanced.wav.bak")
