"""Property filters ``{key, op, value}`` on event columns, row by row (how one value
matches: ``stream.operators.match``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from resolvers.frames import property_values
from stream.operators.match import value_matches

if TYPE_CHECKING:
    from resolvers.funnels import PropertyFilter

Arr = NDArray[Any]


def where_mask(table: pa.Table, where: Sequence[PropertyFilter]) -> Arr:
    ok = np.ones(table.num_rows, dtype=bool)
    for f in where:
        values = property_values(table, f.key)
        ok &= np.fromiter((value_matches(v, f.op, f.value) for v in values), bool, len(values))
    return ok
