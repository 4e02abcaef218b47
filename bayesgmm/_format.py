"""Numbers as table cells and messages print them: one copy for reports, CLI and remedies."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["format_value", "gate_table", "gate_text"]


def format_value(value, digits: int = 3) -> str:
    """One table cell: yes/no, whole numbers as ints, large numbers to 0.1, else 3 digits."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        if float(value).is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.{digits}g}"
    return str(value)


def gate_text(value, threshold) -> str:
    """A gate's value with enough digits never to print like the threshold it differs from.

    :func:`format_value`, with digits added while the text reads as the
    threshold: R-hat 1.013 to three digits is "1.01", the very threshold it
    fails, and ESS 399.96 to 0.1 is "400.0" against 400.

    Examples
    --------
    >>> gate_text(1.013, 1.01), gate_text(1.0004, 1.01), gate_text(399.96, 400)
    ('1.013', '1', '399.96')
    """
    text = format_value(value)
    if (not isinstance(value, (float, np.floating)) or not np.isfinite(value)
            or value == threshold):
        return text
    digits = 3
    while float(text) == float(threshold) and digits < 17:
        digits += 1
        text = f"{value:.{digits}g}"
    return text


def gate_table(table: pd.DataFrame) -> pd.DataFrame:
    """A diagnostics table (``value``, ``threshold``, ...) with ``value`` as :func:`gate_text`."""
    shown = table.copy()
    shown["value"] = [gate_text(value, threshold)
                      for value, threshold in zip(table["value"], table["threshold"])]
    return shown
