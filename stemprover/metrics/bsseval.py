"""BSSEval v4 (museval) for many systems on the same references, factorising once.

    scorer = ReferenceBssEval(clean_stems, sample_rate)    # the expensive part, once per track
    scores = scorer(estimates)                             # stem -> {"sdr", "sir", "sar", "isr"}

``museval.evaluate(..., mode="v4")`` solves, for every call, a linear system whose matrix
is the Gram matrix of delayed references (``n_src * n_channels * 512`` square: 4096 for
four stereo stems). That matrix depends only on the references, so when eight systems are
scored on the same track this module LU-factorises it once and reuses the factors. The
decomposition itself uses museval's own helpers, and the result equals museval's (to
rounding; ``tests/test_evaluate.py`` checks it). Frames are 1 s windows without overlap,
and each metric is the median over frames where no reference or estimate is silent, as
in SiSEC 2018 and :func:`stemprover.metrics.signal.bss_eval`.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fftpack
import scipy.linalg
from museval import metrics as mm

from stemprover.errors import StemproverError

FILTERS_LEN = 512  # museval's distortion filter length (samples)


class ReferenceBssEval:
    """Framewise BSSEval v4 against fixed references.

    Args:
        references: stem -> ``(n_channels, n_samples)`` clean stems (same shapes).
        sample_rate: Hz; windows and hops last ``window_seconds``.
        window_seconds: Frame length (SiSEC: 1 s).
    """

    def __init__(
        self, references: dict[str, np.ndarray], sample_rate: int, window_seconds: float = 1.0
    ):
        self.names = list(references)
        self.refs = _stack(references)  # (n_src, n_samples, n_channels) float64
        self.window = int(round(window_seconds * sample_rate))
        n_src = self.refs.shape[0]
        gram, self.spectra = mm._compute_reference_correlations(self.refs, FILTERS_LEN)
        self.full = _factor(mm._reshape_G(gram))
        self.own = [_factor(mm._reshape_G(gram[j, j][None, None])) for j in range(n_src)]

    def __call__(self, estimates: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """Median SDR, SIR, SAR and ISR (dB) per stem of ``estimates`` (same stems)."""
        missing = [s for s in self.names if s not in estimates]
        if missing:
            raise StemproverError(f"estimates missing for stems {', '.join(missing)}")
        est = _stack({s: estimates[s] for s in self.names})
        if est.shape != self.refs.shape:
            raise StemproverError(f"estimates {est.shape} differ from references {self.refs.shape}")
        n_src, n_samples, n_chan = est.shape
        filters = [self._filters(self.full, self.spectra, est[j]) for j in range(n_src)]
        own = [
            self._filters(self.own[j], self.spectra[j][None], est[j])[0] for j in range(n_src)
        ]
        framer = mm.Framing(self.window, self.window, n_samples)
        scores = np.full((4, n_src, framer.nwin), np.nan)
        for t, win in enumerate(framer):
            ref, cut = self.refs[:, win], est[:, win]
            if mm._any_source_silent(ref) or mm._any_source_silent(cut):
                continue
            for j in range(n_src):
                parts = mm._bss_decomp_mtifilt(ref, cut[j], j, filters[j], own[j])
                scores[:, j, t] = mm._bss_crit(*parts, False)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: every frame silent
            medians = np.nanmedian(scores, axis=2)
        for j, name in enumerate(self.names):
            sdr, isr, sir, sar = (float(v) for v in medians[:, j])
            out[name] = {"sdr": sdr, "sir": sir, "sar": sar, "isr": isr}
        return out

    @staticmethod
    def _filters(factors, spectra: np.ndarray, estimate: np.ndarray) -> np.ndarray:
        """museval's ``_compute_projection_filters`` with a pre-factorised Gram matrix.

        Args:
            spectra: ``(n_src, n_channels, n_fft)`` reference FFTs.
            estimate: ``(n_samples, n_channels)``.

        Returns:
            ``(n_src, n_channels, FILTERS_LEN, n_channels)`` distortion filters.
        """
        n_samples, n_chan = estimate.shape
        n_src = spectra.shape[0]
        padded = mm._zeropad(estimate.T, FILTERS_LEN - 1, axis=1)
        n_fft = int(2 ** np.ceil(np.log2(n_samples + FILTERS_LEN - 1.0)))
        est_spec = scipy.fftpack.fft(padded, n=n_fft)
        cross = np.zeros((n_src, n_chan, FILTERS_LEN, n_chan))
        for j in range(n_src):
            for cj in range(n_chan):
                for c in range(n_chan):
                    corr = np.real(scipy.fftpack.ifft(spectra[j, cj] * np.conj(est_spec[c])))
                    cross[j, cj, :, c] = np.hstack((corr[0], corr[-1 : -FILTERS_LEN : -1]))
        solution = _solve(factors, cross.reshape(n_src * n_chan * FILTERS_LEN, n_chan))
        return solution.reshape(n_src, n_chan, FILTERS_LEN, n_chan)


def _stack(stems: dict[str, np.ndarray]) -> np.ndarray:
    arrays = [np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in stems.values()]
    if len({a.shape for a in arrays}) != 1:
        raise StemproverError(f"stems differ in shape: {[a.shape for a in arrays]}")
    return np.stack(arrays).transpose(0, 2, 1)


def _factor(gram: np.ndarray):
    """LU factors of ``gram + eps I`` (museval's matrix and method), or for a singular
    matrix the matrix itself, solved by least squares (museval's fallback)."""
    matrix = gram + np.finfo(float).eps * np.eye(gram.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            return ("lu", scipy.linalg.lu_factor(matrix, check_finite=False))
        except (scipy.linalg.LinAlgWarning, np.linalg.LinAlgError, ValueError):
            return ("lstsq", gram)


def _solve(factors, rhs: np.ndarray) -> np.ndarray:
    kind, value = factors
    if kind == "lu":
        return scipy.linalg.lu_solve(value, rhs, check_finite=False)
    return np.linalg.lstsq(value, rhs, rcond=None)[0]
