"""Which files an ``enhance`` run cleans, and which of them this process takes.

    files = expand_inputs(["stems/", "extra.wav"], from_list="todo.txt")
    mine, rank, n_proc = process_share(files)   # under torchrun / accelerate launch

Folders are searched recursively for audio files, in sorted order, so every process of a
launch sees the same list; each then takes its contiguous share
(``accelerate.PartialState.split_between_processes``). A scan leaves out the command's own
outputs, so that ``enhance d -o d`` run twice does not clean ``a.enhanced.wav`` again. Only the standard library is
imported at the top: the command's ``--help`` must not load torch.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import PartialState

from stemprover.errors import StemproverError, os_error
from stemprover.inference.naming import is_own_output

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".stem.mp4")


def is_audio_name(path: Path) -> bool:
    return path.name.lower().endswith(AUDIO_SUFFIXES) and not path.name.startswith(".")


def read_list(list_file: str | os.PathLike) -> list[str]:
    """Paths of a list file: one per line; blank lines and ``#`` comments are skipped."""
    path = Path(list_file)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise os_error(err, f"--from-list {path}") from None
    except UnicodeDecodeError:
        raise StemproverError(f"--from-list {path}: not a text file") from None
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _raise(err: OSError) -> None:
    raise os_error(err) from None


def _listed(path: str) -> bool:
    """A plain file, or a name whose check fails for another reason than being absent (a
    symbolic link loop, no permission): that one gets its own error line later."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:  # a dangling link
        return False
    except OSError:
        return True


def scan_folder(folder: Path) -> tuple[list[str], list[str]]:
    """The audio files under ``folder`` (sorted), and apart from them the files named as
    this command names its outputs (``*.enhanced.wav``), which a scan does not clean.

    Raises:
        StemproverError: for a folder (or subfolder) that cannot be read, naming it.
    """
    found, own = [], []
    for root, _, names in os.walk(folder, onerror=_raise):
        for name in names:
            path = str(Path(root) / name)
            if is_audio_name(Path(name)) and _listed(path):
                (own if is_own_output(name) else found).append(path)
    return sorted(found), sorted(own)


def expand_inputs(paths: list[str], from_list: str | None = None,
                  output_of: Callable[[str], Path] | None = None) -> list[str]:
    """Files named, files of the list, and the audio files under named folders (sorted).

    Files are kept as given (a wrong file gets its own error later); a file named twice is
    cleaned once. A folder scan leaves out this command's own outputs: files named
    ``*.enhanced.wav``, and with ``output_of`` (input -> its output path) any file found
    that is the output of another input.

    Raises:
        StemproverError: for an unreadable list or folder, or when nothing is left to clean.
    """
    named = list(paths) + (read_list(from_list) if from_list is not None else [])
    out: list[str] = []
    scanned: set[str] = set()
    for entry in named:
        folder = Path(entry)
        try:
            is_folder = stat.S_ISDIR(os.stat(folder).st_mode)
        except OSError:  # missing, no permission, a link loop: its own error line later
            is_folder = False
        if is_folder:
            found, own = scan_folder(folder)
            if not found:
                besides = (f" besides {len(own)} output(s) of stemprover enhance "
                           "(*.enhanced.wav)" if own else "")
                raise StemproverError(f"{folder}: no audio files in this folder{besides}")
            out += found
            scanned.update(found)
        else:
            out.append(entry)
    unique = list(dict.fromkeys(out))
    if output_of is not None and scanned:
        outputs = set()
        for path in unique:
            try:
                outputs.add(os.path.realpath(output_of(path)))
            except StemproverError:  # a name the template cannot make: reported later
                pass
        unique = [p for p in unique if p not in scanned or os.path.realpath(p) not in outputs]
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
