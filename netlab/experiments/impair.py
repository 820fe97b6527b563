"""The names `netlab.experiments.impair` held, for code written against it: the impairment
settings and decisions are `netlab.impair.decisions` now (the relay and kernel
impairments beside them, in `netlab.impair`). New code imports from there.

A constant rebound here is not seen there: patch it where it is used.
"""

from __future__ import annotations

from ..errors import ImpairmentError
from ..impair.decisions import (
    CONVERTERS, REORDER_HOLD, DatagramImpairer, Impairments, ImpairStats, StreamImpairer, impairments_from_text,
)

__all__ = ["CONVERTERS", "REORDER_HOLD", "DatagramImpairer", "ImpairStats", "ImpairmentError", "Impairments",
           "StreamImpairer", "impairments_from_text"]
