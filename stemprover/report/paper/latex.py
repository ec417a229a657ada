"""LaTeX text from numbers: macro names, number formatting and escaping.

    m = Macros(); m.add("headline gain", fmt(1.234, 2, signed=True))   # \\newcommand{\\spHeadlineGain}{+1.23}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from stemprover.errors import StemproverError

PREFIX = "sp"
MACRO = re.compile(r"^[A-Za-z]+$")
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen \
fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """``25`` -> ``"TwentyFive"`` (0 to 999_999; larger numbers digit by digit)."""
    if n < 20:
        return _ONES[n].capitalize()
    if n < 100:
        return _TENS[n // 10].capitalize() + (number_words(n % 10) if n % 10 else "")
    if n < 1000:
        rest = number_words(n % 100) if n % 100 else ""
        return number_words(n // 100) + "Hundred" + rest
    if n < 1_000_000:
        rest = number_words(n % 1000) if n % 1000 else ""
        return number_words(n // 1000) + "Thousand" + rest
    return "".join(_ONES[int(d)].capitalize() for d in str(n))


def camel(part: object) -> str:
    """One name part as CamelCase letters.

    ``"si_sdr"`` -> ``SiSdr``; ``"0.25"`` -> ``ZeroPointTwentyFive``.
    """
    words = re.findall(r"[A-Za-z]+|\d+|\.", str(part))
    out = []
    for word in words:
        if word == ".":
            out.append("Point")
        elif word.isdigit():
            out.append(number_words(int(word)))
        else:
            out.append(word[0].upper() + word[1:].lower())
    return "".join(out)


def macro_name(*parts: object) -> str:
    name = PREFIX + "".join(camel(p) for p in parts)
    if not MACRO.match(name) or name == PREFIX:
        raise StemproverError(f"cannot make a LaTeX macro name from {parts!r}")
    return name


def decimals_for(metric: str) -> int:
    name = re.sub(r"[^a-z]", "", metric.lower())
    if any(k in name for k in ("stoi", "phase", "mrstft", "rtf", "ratio")):
        return 3
    return 2


def fmt(value: float | int | None, decimals: int = 2, signed: bool = False) -> str:
    """A number as TeX: ``n/a`` when missing, ``\\ensuremath{-}`` for a minus sign."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return r"\textit{n/a}"
    if isinstance(value, int) and not isinstance(value, bool):
        return ("\\ensuremath{-}" if value < 0 else "") + f"{abs(value):,d}".replace(",", "{,}")
    if round(abs(value), decimals) == 0:
        return f"{0:.{decimals}f}"
    sign = "\\ensuremath{-}" if value < 0 else ("+" if signed else "")
    return sign + f"{abs(value):.{decimals}f}"


def escape(text: object) -> str:
    """Plain text made safe for LaTeX."""
    table = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\^{}",
    }
    return "".join(table.get(c, c) for c in str(text))


class Macros(dict):
    """Ordered ``{macro name: TeX body}`` that refuses duplicate names."""

    def add(self, parts: Iterable[object] | str, body: str) -> str:
        name = macro_name(*([parts] if isinstance(parts, str) else parts))
        if name in self:
            raise StemproverError(f"duplicate paper macro \\{name} from {parts!r}")
        self[name] = body
        return name

    def tex(self, header: str = "") -> str:
        lines = [f"% {line}" for line in header.splitlines()]
        lines += [f"\\newcommand{{\\{k}}}{{{v}}}" for k, v in self.items()]
        return "\n".join(lines) + "\n"
