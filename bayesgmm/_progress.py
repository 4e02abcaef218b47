"""One way to show progress: :func:`progress`, a bar in a terminal and in Jupyter.

Every long loop of bayesgmm (ADVI's optimisation, Stephens' relabelling,
K-fold refits, ``compare_k``'s fits) shows its progress through
:func:`progress`, behind a ``progressbar`` keyword that defaults to False in
the library functions; ``progressbar=False`` prints nothing at all.

The bars are rich's :class:`rich.progress.Progress` (rich is already a
dependency), drawn two ways:

* in a terminal, by rich's own live display on standard error (so piped
  standard output stays clean), removed when the loop ends; on a stream
  that is not a terminal (a log file, CI) rich draws nothing live;
* in Jupyter, as HTML (with a plain-text copy) in one IPython display that
  is updated in place, at most :data:`JUPYTER_REFRESH_SECONDS` apart, and
  left showing the final state, as nutpie's own bar is.

The decision (not ipywidgets): rich's live display in Jupyter needs
``ipywidgets`` and warns ``install "ipywidgets"`` without it.  Declaring it a
dependency would still leave a bar that only shows when the Jupyter server
has a matching widget extension (a kernel in its own virtual environment
often has none) and that a saved notebook shows as ``Output()``.  An updated
display needs nothing beyond IPython, which every Jupyter kernel has, works
in JupyterLab, Notebook, VS Code and Colab, and keeps its last state in the
saved notebook.

Bars nest: a :func:`progress` entered while another is showing adds a row
to the same display (e.g. a K-fold task's refits under ``compare_k``'s bar)
and removes it on exit.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["JUPYTER_REFRESH_SECONDS", "TERMINAL_REFRESH_PER_SECOND", "Bar", "progress"]

JUPYTER_REFRESH_SECONDS = 0.2
"""Least time between two updates of the Jupyter display (each update is one message)."""

TERMINAL_REFRESH_PER_SECOND = 4
"""Redraws per second of the terminal display, by rich's thread beside the work (rich's
default, 10, took ~3 % of a 1.2 s ADVI fit on a busy two-core machine)."""

_JUPYTER_WIDTH = 100
_HTML = ("<pre style=\"white-space:pre;overflow-x:auto;line-height:normal;"
         "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>")


class _JupyterDisplay:
    """Draws a :class:`Progress` into one IPython display, updated in place."""

    def __init__(self, bars: Progress):
        from IPython.display import display

        self.bars = bars
        self.handle = display(self._bundle(), raw=True, display_id=True)
        self.drawn_at = time.monotonic()

    def _bundle(self) -> dict[str, str]:
        html = Console(file=io.StringIO(), record=True, width=_JUPYTER_WIDTH,
                       force_terminal=True, force_jupyter=False, color_system="truecolor")
        html.print(self.bars.get_renderable())
        # Without colours rich leaves the bar's remaining part blank, as plain text needs.
        text = Console(file=io.StringIO(), width=_JUPYTER_WIDTH, force_terminal=False,
                       force_jupyter=False, color_system=None)
        text.print(self.bars.get_renderable())
        return {"text/html": html.export_html(inline_styles=True, code_format=_HTML),
                "text/plain": text.file.getvalue().rstrip()}

    def refresh(self, force: bool = False) -> None:
        if force or time.monotonic() - self.drawn_at >= JUPYTER_REFRESH_SECONDS:
            self.handle.update(self._bundle(), raw=True)
            self.drawn_at = time.monotonic()


class _Display:
    """The bars on screen: rich's live display in a terminal, or a Jupyter display."""

    def __init__(self):
        console = Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
            refresh_per_second=TERMINAL_REFRESH_PER_SECOND,
        )
        self.jupyter = _JupyterDisplay(self.bars) if console.is_jupyter else None
        if self.jupyter is None:
            self.bars.start()

    def refresh(self, force: bool = False) -> None:
        if self.jupyter is not None:
            self.jupyter.refresh(force)

    def close(self) -> None:
        if self.jupyter is None:
            self.bars.stop()
        else:
            self.jupyter.refresh(force=True)


_showing: list[_Display] = []
"""The display of the outermost open bar (at most one), shared by nested bars."""


class Bar:
    """One row of the progress display; :func:`progress` yields it.

    A disabled bar (``progressbar=False``) accepts the same calls and shows nothing.
    """

    def __init__(self, display: _Display | None, task: TaskID | None):
        self._display = display
        self._task = task

    def advance(self, steps: float = 1, description: str | None = None) -> None:
        """Count ``steps`` more done, and optionally change the description.

        Parameters
        ----------
        steps : float, default=1
        description : str, optional
        """
        if self._display is None:
            return
        self._display.bars.update(self._task, advance=steps, description=description)
        self._display.refresh()

    def describe(self, description: str) -> None:
        """Change the description without counting work (e.g. what is running now)."""
        self.advance(0, description)


@contextmanager
def progress(total: float | None, description: str, enabled: bool = True) -> Iterator[Bar]:
    """Show a progress bar for the duration of a ``with`` block.

    Parameters
    ----------
    total : float or None
        Units of work in all; None when unknown (e.g. iterations until
        convergence): the bar then pulses and counts.
    description : str
        What is running, shown left of the bar.
    enabled : bool, default=True
        False: nothing is shown (the yielded bar ignores every call).

    Yields
    ------
    Bar
        Call :meth:`Bar.advance` as work is done.

    Examples
    --------
    >>> with progress(3, "fitting", enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.advance()
    """
    if not enabled:
        yield Bar(None, None)
        return
    outermost = not _showing
    if outermost:
        _showing.append(_Display())
    display = _showing[0]
    task = display.bars.add_task(description, total=total)
    display.refresh()
    try:
        yield Bar(display, task)
    finally:
        if outermost:
            display.close()
            _showing.clear()
        else:
            display.bars.remove_task(task)
            display.refresh(force=True)
