"""Where ``stemprover enhance`` writes each output, and which files are its own outputs.

    output_path("separated/song/vocals.wav", "cleaned")     # cleaned/vocals.enhanced.wav
    output_path("separated/song/vocals.wav", "cleaned", filename="{folder}/{track}.{ext}")
    check_template("{track.upper}.wav")                     # StemproverError

A ``--filename`` template is not handed to ``str.format``: it may hold only the fields of
``FILENAME_FIELDS``, plain (no attribute or index access, no conversion, no format spec),
so that a name is never something a template computed from the program's own objects.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from stemprover.dsp.audio import STEM_FILE_SUFFIX
from stemprover.errors import StemproverError

OUTPUT_SUFFIX = ".enhanced.wav"
"""The default output name ends with this; folder scans skip such files (see
:func:`is_own_output`)."""
FILENAME_FIELDS = ("track", "stem", "folder", "ext")


def is_stem_file(path: str | os.PathLike) -> bool:
    return Path(path).name.lower().endswith(STEM_FILE_SUFFIX)


def is_own_output(path: str | os.PathLike) -> bool:
    """True for a file named as ``stemprover enhance`` names its outputs by default."""
    return Path(path).name.lower().endswith(OUTPUT_SUFFIX)


def _fields_text() -> str:
    return ", ".join("{" + name + "}" for name in FILENAME_FIELDS)


def check_template(filename: str) -> list[tuple[str, str | None]]:
    """The pieces of a ``--filename`` template: ``(literal text, field name or None)``.

    Raises:
        StemproverError: for an empty template, unbalanced braces, a field that is not in
            ``FILENAME_FIELDS``, or a field with attribute or index access, a conversion
            (``!r``) or a format spec (``:>8``).
    """
    if not filename.strip():
        raise StemproverError("--filename '': the template is empty")
    try:
        parsed = list(string.Formatter().parse(filename))
    except ValueError:  # a lone "{" or "}"
        raise StemproverError(f"--filename {filename!r}: an unpaired brace; write a literal "
                              "brace as {{ or }}") from None
    pieces = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
            continue
        if field not in FILENAME_FIELDS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (
                f":{spec}" if spec else "") + "}"
            raise StemproverError(f"--filename {filename!r}: unknown field {shown}; use "
                                  f"{_fields_text()} as they are (no attribute, index or "
                                  "format spec)")
        pieces.append((literal, field))
    return pieces


def output_path(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    stem: str | None = None,
    filename: str | None = None,
) -> Path:
    """Where the enhanced ``in_path`` goes.

    Args:
        in_path: The input file.
        out_dir: The output folder.
        stem: The stem taken from a ``.stem.mp4`` input.
        filename: A template relative to ``out_dir`` with the fields ``{track}`` (the input's
            name without its extension), ``{stem}`` (the stem taken from a ``.stem.mp4``;
            the input's name for other files), ``{folder}`` (the input's folder name) and
            ``{ext}`` ("wav"), e.g. ``"{track}/{stem}.{ext}"``. None: ``<name>.enhanced.wav``,
            ``<name>.<stem>.enhanced.wav`` for a ``<name>.stem.mp4`` file.

    Raises:
        StemproverError: for a template :func:`check_template` refuses, one that leaves
            ``out_dir``, or one whose name does not end in ``.wav``.
    """
    name = Path(in_path).name
    if is_stem_file(in_path):
        track = name[: -len(STEM_FILE_SUFFIX)]
        default = track + (f".{stem}" if stem else "")
    else:
        track = default = Path(in_path).stem
    if filename is None:
        return Path(out_dir) / f"{default}{OUTPUT_SUFFIX}"
    fields = dict(track=track, stem=stem if stem and is_stem_file(in_path) else track,
                  folder=Path(os.path.abspath(in_path)).parent.name, ext="wav")
    relative = Path("".join(literal + (fields[field] if field else "")
                            for literal, field in check_template(filename)))
    if relative.is_absolute() or ".." in relative.parts or not relative.name.strip("."):
        raise StemproverError(f"--filename {filename!r}: must name a file inside the output "
                              "folder")
    if relative.suffix.lower() != ".wav":
        raise StemproverError(f"--filename {filename!r}: outputs are WAV files; end it in "
                              "'.{ext}' or '.wav'")
    return Path(out_dir) / relative
