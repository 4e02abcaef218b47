"""The packed float64 block: one named specification for the packer and the kernel.

Everything the log density reads travels in one float64 array, the block
(nutpie hands it to the ``cfunc`` as ``user_data``).  Its layout:

====================  =====================================  ===========================
part                  entries                                named by
====================  =====================================  ===========================
scalars               ``len(Field)``                         :class:`Field`
section bounds        ``len(Section) + 1``                   :class:`Section`
parameter bounds      ``len(Unconstrained) + 1``             :data:`Unconstrained`
sections              their lengths, in that order           :class:`Section`
====================  =====================================  ===========================

The bounds are absolute positions: section ``s`` is
``block[bounds[s]:bounds[s + 1]]`` and parameter block ``u`` of the
unconstrained vector is ``theta[bounds[u]:bounds[u + 1]]``.  :func:`pack`
writes them from the arrays it is given and from
:class:`bayesgmm.parameters.Layout`; :func:`section` and :func:`parameter_block`
read them.  So neither side counts offsets by hand, and the unconstrained
vector's layout has one definition, :class:`~bayesgmm.parameters.Layout`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import numba
import numpy as np

from bayesgmm.parameters import UNCONSTRAINED_BLOCKS, Layout

__all__ = [
    "Field",
    "Section",
    "PatternColumn",
    "Unconstrained",
    "HEADER_SIZE",
    "pack",
    "section",
    "parameter_block",
    "block_size",
]


class Field(IntEnum):
    """The scalars at the head of the block, by position."""

    N_SAMPLES = 0  # the summed row weights: the number of rows when unweighted
    N_FEATURES = 1
    N_COMPONENTS = 2
    SCALE_PRIOR = 3  # position in bayesgmm.priors.SCALE_PRIORS
    LKJ_ETA = 4
    LKJ_CONSTANT = 5  # see bayesgmm._kernel.priors.lkj_log_normaliser
    DIRICHLET_CONSTANT = 6  # see bayesgmm._kernel.priors.dirichlet_constant
    COVARIANCE_TYPE = 7  # position in bayesgmm.parameters.COVARIANCE_TYPES
    NOISE_LOG_DENSITY = 8  # log(1 / V) on the model's scale; -inf without a noise component


class Section(IntEnum):
    """The arrays after the header, in block order."""

    WEIGHT_CONCENTRATION = 0  # (n_components,), then the noise's with a noise component
    MEAN_LOC = 1  # (n_features,)
    MEAN_SCALE = 2  # (n_features,)
    SCALE_SCALE = 3  # (n_features,), or (1,) for spherical
    TRIANGLE_ROWS = 4  # (n_triangle,) from bayesgmm.parameters.spiral_indices
    TRIANGLE_COLS = 5  # (n_triangle,)
    DATA = 6  # (n_complete, n_features), row-major: the rows without missing values
    PATTERNS = 7  # (n_patterns, PatternColumn.COLUMNS + n_features): see PatternColumn
    INCOMPLETE_DATA = 8  # the observed values of the other rows, pattern by pattern, row-major
    ROW_WEIGHTS = 9  # (n_complete,) frequency weights of DATA's rows; empty when unweighted
    INCOMPLETE_WEIGHTS = 10  # the other rows' weights, in INCOMPLETE_DATA's order; or empty


class PatternColumn(IntEnum):
    """The columns of one row of :attr:`Section.PATTERNS`: one missingness pattern.

    The rows with missing values are grouped by which coordinates they
    observe; :attr:`Section.INCOMPLETE_DATA` holds their observed values,
    pattern after pattern, ``N_OBSERVED`` per row.  ``COLUMNS`` is the first
    of ``n_features`` entries: the observed coordinates in increasing order,
    then ``-1``.  Data without missing values have no patterns.
    """

    N_ROWS = 0
    N_OBSERVED = 1
    NOISE_LOG_EXTENT = 2  # log of the noise box's extent along the missing coordinates
    COLUMNS = 3


# The blocks of the unconstrained vector, in the order of (and named after)
# bayesgmm.parameters.UNCONSTRAINED_BLOCKS: WEIGHTS, MEANS, SCALES, CORRELATIONS.
Unconstrained = IntEnum(
    "Unconstrained", [name.upper() for name in UNCONSTRAINED_BLOCKS], start=0
)

SECTION_BOUNDS = len(Field)
_BLOCK_END = SECTION_BOUNDS + len(Section)  # the last section bound: the block's length
PARAMETER_BOUNDS = _BLOCK_END + 1
HEADER_SIZE = PARAMETER_BOUNDS + len(Unconstrained) + 1


def _complete(kind: type[IntEnum], given: Mapping) -> list:
    """The values of ``given`` in ``kind`` order; every member exactly once."""
    if set(given) != set(kind):
        missing = sorted(member.name for member in set(kind) - set(given))
        extra = sorted(str(key) for key in set(given) - set(kind))
        raise ValueError(f"{kind.__name__} entries missing: {missing}, unknown: {extra}.")
    return [given[member] for member in kind]


def pack(
    fields: Mapping[Field, float], sections: Mapping[Section, np.ndarray], layout: Layout
) -> np.ndarray:
    """Write a block from named scalars, named arrays and the parameter layout.

    Parameters
    ----------
    fields : mapping of Field to float
        Every :class:`Field`.
    sections : mapping of Section to array-like
        Every :class:`Section`; each is flattened row-major.
    layout : bayesgmm.parameters.Layout
        Where each :data:`Unconstrained` block sits in ``theta``.

    Returns
    -------
    ndarray of shape (block_size,)

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.parameters import Layout
    >>> arrays = {s: np.full(s + 1, float(s)) for s in Section}
    >>> block = pack({f: 0.0 for f in Field}, arrays, Layout(2, 3, "full"))
    >>> section(block, Section.MEAN_SCALE).tolist()
    [2.0, 2.0, 2.0]
    >>> int(block_size(block)) == block.size
    True
    """
    arrays = [np.ravel(np.asarray(a, dtype=np.float64)) for a in _complete(Section, sections)]
    section_bounds = HEADER_SIZE + np.cumsum([0, *(a.size for a in arrays)])
    lengths = layout.lengths
    parameter_bounds = np.cumsum([0, *(lengths[u.name.lower()] for u in Unconstrained)])
    header = np.concatenate(
        [np.asarray(_complete(Field, fields), dtype=np.float64), section_bounds,
         parameter_bounds]
    )
    return np.concatenate([header, *arrays])


@numba.njit(cache=True, nogil=True)
def section(block, which):
    """View of the :class:`Section` ``which`` of ``block`` (flat)."""
    start = int(block[SECTION_BOUNDS + which])
    stop = int(block[SECTION_BOUNDS + which + 1])
    return block[start:stop]


@numba.njit(cache=True, nogil=True)
def parameter_block(vector, block, which):
    """View of the :data:`Unconstrained` block ``which`` of ``theta`` or its gradient."""
    start = int(block[PARAMETER_BOUNDS + which])
    stop = int(block[PARAMETER_BOUNDS + which + 1])
    return vector[start:stop]


@numba.njit(cache=True, nogil=True)
def block_size(header):
    """Length of the whole block, read from its first ``HEADER_SIZE`` entries."""
    return int(header[_BLOCK_END])
