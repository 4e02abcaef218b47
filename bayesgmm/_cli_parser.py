"""The argument parser of the ``bayesgmm`` command, and the model settings its options give.

Every option that sets a :class:`bayesgmm.BayesianGMM` argument stores under
that argument's name (``--covariance`` in ``covariance_type``, ``--seed`` in
``random_state``), so :func:`model_settings` passes them on without a second
list of names.  Sampler options without a default here (``--cores``,
``--target-accept``, ``--max-treedepth``, ``--mass-matrix``,
``--scale-prior``) are passed only when given, so the library's defaults stay
the only copy.  Global options (``--quiet``, ``--version``) are accepted
before and after the subcommand.
"""

from __future__ import annotations

import argparse
import math
import re

from bayesgmm._checks import MISSING_OPTIONS, SEED_LIMIT
from bayesgmm._version import __version__
from bayesgmm.inference import MASS_MATRICES, METHODS
from bayesgmm.parameters import COVARIANCE_TYPES
from bayesgmm.priors import SCALE_PRIORS, GMMPriors

__all__ = ["MODEL_SETTINGS", "PREDICTION_PREFIX", "build_parser", "model_settings"]

MODEL_SETTINGS = ("method", "covariance_type", "noise", "missing", "draws", "tune", "chains",
                  "random_state", "cores", "target_accept", "max_treedepth", "mass_matrix")
""":class:`bayesgmm.BayesianGMM` arguments that options of the same ``dest`` set."""

PREDICTION_PREFIX = "bayesgmm_"
"""Prefix of every column ``predict`` adds when one of them would overwrite an input column."""


def model_settings(args: argparse.Namespace) -> dict:
    """The :class:`bayesgmm.BayesianGMM` keyword arguments given by a command's options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of ``fit``, ``compare`` or ``demo``; settings the
        command has no option for, and sampler options not given, are left
        out so that the library's defaults apply.

    Returns
    -------
    dict
        Keyword arguments by :data:`MODEL_SETTINGS` name, plus ``priors``
        when ``--scale-prior`` is given.
    """
    settings = {name: getattr(args, name) for name in MODEL_SETTINGS
                if getattr(args, name, None) is not None}
    if getattr(args, "scale_prior", None) is not None:
        settings["priors"] = GMMPriors(scale_prior=args.scale_prior)
    return settings


# ---------------------------------------------------------------- value types
def _shown(text: str) -> str:
    """``text`` cut to 30 characters for a message."""
    return text if len(text) <= 30 else f"{text[:27]}..."


def _integer(low: int, high: int | None = None):
    """Argparse type: a whole number >= ``low`` (and < ``high``), else a one-line message."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"{_shown(text)!r} is not a whole number")
        try:
            value = int(text)
        except ValueError:  # more digits than Python converts
            raise argparse.ArgumentTypeError(f"{_shown(text)!r} is too large") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {_shown(text)}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"must be below {high}, got {_shown(text)}")
        return value
    return parse


def _fraction(example: float):
    """Argparse type: a number strictly between 0 and 1, else a message quoting ``example``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value < 1:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, such "
                                             f"as {example}; got {_shown(text)!r}")
        return value
    return parse


def _separator(text: str) -> str:
    """Argparse type of ``--sep``: one punctuation character, or ``tab``."""
    if text.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(text) != 1 or text.isalnum() or text in "\"'.\r\n ":
        raise argparse.ArgumentTypeError(f"{text!r} is not a separator; use one character "
                                         "such as ',' or ';', or 'tab'")
    return text


# ---------------------------------------------------------------- option groups
def _add_global_options(parser, on_subcommand: bool) -> None:
    """``--quiet`` and ``--version``, on the main parser and on every subcommand.

    On a subcommand ``--quiet`` has no default (``argparse.SUPPRESS``), so a
    ``--quiet`` given before the subcommand is not overwritten by its absence
    after it.
    """
    parser.add_argument("--quiet", action="store_true",
                        default=argparse.SUPPRESS if on_subcommand else False,
                        help="no progress bars")
    parser.add_argument("--version", action="version", version=f"bayesgmm {__version__}")


def _add_csv_options(parser) -> None:
    parser.add_argument("--sep", type=_separator,
                        help="field separator of the data file: ',', ';', 'tab' or '|' "
                             "(default: detected from its first lines)")
    parser.add_argument("--decimal", choices=[".", ","], metavar="{.|,}",
                        help="decimal mark of the data file (default: ',' when the separator "
                             "is not ',' and values look like 1,5; else '.')")


def _add_sampler_options(parser) -> None:
    """NUTS and prior settings; left out of the settings unless given (library defaults)."""
    group = parser.add_argument_group("sampler and prior (default: BayesianGMM's)")
    group.add_argument("--cores", type=_integer(1), metavar="N",
                       help="chains sampled in parallel")
    group.add_argument("--target-accept", type=_fraction(0.95), metavar="RATE",
                       help="NUTS target acceptance rate in (0, 1); raise it (e.g. to 0.95) "
                            "when the diagnostics report divergences")
    group.add_argument("--max-treedepth", type=_integer(1), metavar="DEPTH",
                       help="NUTS trees take at most 2**depth steps; raise it when many "
                            "draws reach the limit")
    group.add_argument("--mass-matrix", choices=MASS_MATRICES,
                       help="nutpie's mass-matrix adaptation; low_rank can help strongly "
                            "correlated posteriors")
    group.add_argument("--scale-prior", choices=SCALE_PRIORS,
                       help="prior of the component scales")


def _add_sampling_options(parser, with_method: bool = True) -> None:
    if with_method:
        parser.add_argument(
            "--method", choices=METHODS, default="auto",
            help="auto: NUTS below 50,000 rows, the Laplace approximation from there on")
    parser.add_argument("--covariance", dest="covariance_type", choices=COVARIANCE_TYPES,
                        default="full")
    parser.add_argument("--noise", action="store_true",
                        help="add a uniform noise component for scattered outliers "
                             "(labelled -1)")
    parser.add_argument("--missing", choices=MISSING_OPTIONS, default="reject",
                        help="empty cells: refuse them (default) or fit with them, "
                             "marginalised (assumed missing at random)")
    parser.add_argument("--draws", type=_integer(1), default=1000)
    parser.add_argument("--tune", type=_integer(1), default=1000)
    parser.add_argument("--chains", type=_integer(1), default=4)
    parser.add_argument("--seed", dest="random_state", metavar="SEED",
                        type=_integer(0, SEED_LIMIT), default=0,
                        help="random seed, 0 <= seed < 2**63")
    _add_sampler_options(parser)
    parser.add_argument("--columns", help="comma-separated columns to use (default: all)")
    _add_csv_options(parser)
    parser.add_argument("--out", required=True,
                        help="run folder for model.nc and the report; one run at a time")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _subcommand(commands, name: str, summary: str, details: str = ""):
    """A subcommand's parser, with the global options."""
    parser = commands.add_parser(name, help=summary, description=f"{summary}. {details}")
    _add_global_options(parser, on_subcommand=True)
    return parser


READING = ("The data file's separator (',', ';', tab, '|') and decimal mark are detected; "
           "override them with --sep and --decimal.")
PREDICT_DETAILS = (
    "Writes the input columns, then prob_<k>, prob_<k>_lower, prob_<k>_upper per component "
    "(and p_noise, p_noise_lower, p_noise_upper for a model fitted with --noise, label -1 for "
    "its points), "
    "entropy, expected_entropy, mutual_information, label, confidence, anomaly_score, "
    "anomaly_lower and anomaly_upper, with the input's separator and decimal mark. Input "
    "columns are never overwritten: if one has any of these names, every new column is "
    f"prefixed '{PREDICTION_PREFIX}'. Exits 2 if the model gives non-finite values. "
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``bayesgmm`` command.

    Returns
    -------
    argparse.ArgumentParser
        Subcommands ``demo``, ``fit``, ``compare``, ``predict`` and ``diagnose``;
        the parsed ``command`` names the one given.

    Examples
    --------
    >>> args = build_parser().parse_args(["fit", "data.csv", "--k", "2", "--out", "run",
    ...                                   "--quiet", "--target-accept", "0.95"])
    >>> args.quiet, model_settings(args)["target_accept"]
    (True, 0.95)
    """
    parser = argparse.ArgumentParser(
        prog="bayesgmm", description="Bayesian Gaussian mixtures on CSV files."
    )
    _add_global_options(parser, on_subcommand=False)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = _subcommand(commands, "demo", "full analysis of the bundled Old Faithful data")
    demo.add_argument("--out", default="reports/demo")
    demo.add_argument("--force", action="store_true", help="overwrite an existing report")
    _add_sampler_options(demo)
    fit = _subcommand(commands, "fit", "fit one model and write model.nc and a report", READING)
    fit.add_argument("data")
    fit.add_argument("--k", type=_integer(1), required=True, help="number of components")
    fit.add_argument("--sample-weight", metavar="COLUMN",
                     help="column of frequency weights (how many times each row counts); "
                          "it is not used as a feature")
    _add_sampling_options(fit)
    compare = _subcommand(commands, "compare", "compare numbers of components", READING)
    compare.add_argument("data")
    compare.add_argument("--k", default="1-6", help="range like 1-6 or list like 2,3,5")
    compare.add_argument("--jobs", type=_integer(1), default=1, help="parallel processes")
    _add_sampling_options(compare, with_method=False)
    predict = _subcommand(commands, "predict", "memberships and anomaly scores per row",
                          PREDICT_DETAILS + READING)
    predict.add_argument("model")
    predict.add_argument("data")
    _add_csv_options(predict)
    predict.add_argument("--out", required=True, help="CSV file to write")
    predict.add_argument("--force", action="store_true", help="overwrite an existing --out")
    diagnose = _subcommand(commands, "diagnose", "convergence diagnostics of a saved model",
                           "Exits 1 when a check fails.")
    diagnose.add_argument("model")
    return parser
