"""Which files an ``enhance`` run cleans, and which of them this process takes.

    files = expand_inputs(["stems/", "extra.wav"], from_list="todo.txt")
    mine, rank, n_proc = process_share(files)   # under torchrun / accelerate launch

Folders are searched recursively for audio files, in sorted order, so every process of a
launch sees the same list; each then takes its contiguous share
(``accelerate.PartialState.split_between_processes``). Only the standard library is
imported at the top: the command's ``--help`` must not load torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from accelerate import PartialState

from stemprover.errors import StemproverError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".stem.mp4")


def is_audio_name(path: Path) -> bool:
    return path.name.lower().endswith(AUDIO_SUFFIXES) and not path.name.startswith(".")


def read_list(list_file: str | os.PathLike) -> list[str]:
    """Paths of a list file: one per line; blank lines and ``#`` comments are skipped."""
    path = Path(list_file)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise StemproverError(f"--from-list {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise StemproverError(f"--from-list {path}: not a text file") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def expand_inputs(paths: list[str], from_list: str | None = None) -> list[str]:
    """Files named, files of the list, and the audio files under named folders (sorted).

    Files are kept as given (a wrong file gets its own error later); a file named twice is
    cleaned once.

    Raises:
        StemproverError: for an unreadable list, or when nothing is left to clean.
    """
    named = list(paths) + (read_list(from_list) if from_list is not None else [])
    out: list[str] = []
    for entry in named:
        folder = Path(entry)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_audio_name(p))
            if not found:
                raise StemproverError(f"{folder}: no audio files in this folder")
            out += found
        else:
            out.append(entry)
    unique = list(dict.fromkeys(out))
    if not unique:
        raise StemproverError("no input files: name files or folders, or pass --from-list")
    return unique


def n_processes() -> int:
    """Processes of the launch (``WORLD_SIZE`` set by torchrun and accelerate launch)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def process_share(items: list[str]) -> tuple[list[str], int, int]:
    """This process's contiguous share of ``items``, its rank and the number of processes."""
    if n_processes() == 1:
        return list(items), 0, 1
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.split_between_processes(list(items)) as share:
        return list(share), state.process_index, state.num_processes


def process_device() -> str:
    """This process's device under a launch: its own GPU, or the CPU."""
    return str(PartialState(cpu=not torch.cuda.is_available()).device)
