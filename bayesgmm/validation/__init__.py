"""Validation and benchmarks: SBC, recovery, peer agreement, timing."""

import platform


def machine_note(total_seconds: float, **libraries: str) -> str:
    """The machine line every benchmark report ends with.

    Parameters
    ----------
    total_seconds : float
        Wall time of the whole benchmark.
    **libraries : str
        Versions to state, e.g. ``numpy=np.__version__``.

    Returns
    -------
    str
    """
    versions = "".join(f", {name.replace('_', '-')} {version}"
                       for name, version in libraries.items())
    return (f"Machine: {platform.machine()}, {platform.python_implementation()} "
            f"{platform.python_version()}{versions}; shared 2-core host, so absolute times are "
            "noisy and only the ratios are meaningful. Total benchmark wall time: "
            f"{total_seconds:.0f} s.")
