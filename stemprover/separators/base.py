"""The separator interface and its registry.

    sep = get_separator("irm2")
    stems = sep.separate(mixture, 44100, references=clean_stems)  # dict stem -> (C, n)

Every separator takes a mixture ``(n_channels, n_samples)`` and returns the four MUSDB
stems with the same shape. Oracle separators (``needs_references``) also need the clean
stems; blind ones ignore them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from stemprover.constants import STEMS
from stemprover.dsp.audio import check_mixture
from stemprover.errors import StemproverError

_REGISTRY: dict[str, Callable[..., Separator]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a separator to :func:`get_separator` under ``name``."""

    def wrap(cls: type) -> type:
        _REGISTRY[name] = cls
        return cls

    return wrap


class Separator(ABC):
    """Splits a mixture into :data:`~stemprover.constants.STEMS`."""

    name: str = "separator"
    needs_references: bool = False  # oracles need the clean stems

    def separate(
        self,
        mixture: np.ndarray,
        sample_rate: int,
        references: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Separate ``mixture``.

        Args:
            mixture: ``(n_channels, n_samples)`` or ``(n_samples,)`` float audio.
            sample_rate: Hz.
            references: stem -> clean ``(n_channels, n_samples)``; required by oracles.

        Returns:
            stem -> float32 array with the mixture's shape (a 1-D input gives 1-D stems).
        """
        mono_input = np.ndim(mixture) == 1
        mix = check_mixture(mixture)
        refs = None
        if self.needs_references:
            if references is None:
                raise StemproverError(f"separator {self.name!r} is an oracle and needs references")
            refs = {}
            for stem in STEMS:
                if stem not in references:
                    raise StemproverError(f"separator {self.name!r}: reference {stem!r} missing")
                ref = np.asarray(references[stem], dtype=np.float32)
                ref = ref[None] if ref.ndim == 1 else ref
                if ref.shape != mix.shape:
                    raise StemproverError(
                        f"separator {self.name!r}: reference {stem!r} has shape {ref.shape}, "
                        f"mixture has {mix.shape}"
                    )
                refs[stem] = ref
        out = self._separate(mix, int(sample_rate), refs)
        result = {}
        for stem in STEMS:
            audio = np.asarray(out[stem], dtype=np.float32)
            if audio.shape != mix.shape:
                raise StemproverError(
                    f"separator {self.name!r} returned {stem} with shape {audio.shape}, "
                    f"expected {mix.shape}"
                )
            result[stem] = audio[0] if mono_input else audio
        return result

    @abstractmethod
    def _separate(
        self, mixture: np.ndarray, sample_rate: int, references: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        """Separate a checked ``(n_channels, n_samples)`` float32 mixture."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def available_separators() -> list[str]:
    """Names accepted by :func:`get_separator`."""
    _load_all()
    return sorted(_REGISTRY)


def get_separator(name: str, **kwargs) -> Separator:
    """Build a separator by name.

    Names: ``irm1``, ``irm2``, ``ibm``, ``degraded`` (``artifact``, ``severity``, ``seed``),
    ``hpss``, ``nmf``, ``repet``, ``htdemucs`` / ``openunmix`` (``checkpoint``), ``external``
    (``folder``).

    Raises:
        StemproverError: for an unknown name or bad keyword arguments.
    """
    _load_all()
    if name not in _REGISTRY:
        raise StemproverError(
            f"unknown separator {name!r}; choose one of {', '.join(sorted(_REGISTRY))}"
        )
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise StemproverError(f"separator {name!r}: {exc}") from exc


def _load_all() -> None:
    # Importing the modules runs their @register decorators.
    from stemprover.separators import (  # noqa: F401
        classical,
        degraded,
        external,
        neural,
        oracle,
        zoo,
    )


