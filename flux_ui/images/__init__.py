"""Pictures in and out: preparing references, checking results, labelling saved images.

One concern per module: :mod:`~flux_ui.images.references` prepares what a person uploads
(helped by :mod:`~flux_ui.images.geometry`, :mod:`~flux_ui.images.modes` and
:mod:`~flux_ui.images.colour`), :mod:`~flux_ui.images.formats` sniffs formats and inspects what
the service returns, :mod:`~flux_ui.images.metadata` labels saved images in place through the
chunk and segment surgery of :mod:`~flux_ui.images.containers`, and
:mod:`~flux_ui.images.memory` bounds the memory all of it may take.

The names below are re-exported so importers need not know that layout. Settings are read
where they live: change (or monkeypatch) ``flux_ui.images.memory.DECODE_SLOTS``, not this
package's copy.
"""

from flux_ui.images.formats import ImageInfo, inspect_image
from flux_ui.images.memory import (
    DECODE_BUDGET_BYTES,
    DECODE_SLOTS,
    MAX_INFLATED_BYTES,
    InflateLimitError,
    inflate_capped,
)
from flux_ui.images.metadata import embed_metadata, read_metadata
from flux_ui.images.references import MAX_REFERENCE_BYTES, PreparedImage, prepare_reference, prepare_references

__all__ = [
    "DECODE_BUDGET_BYTES",
    "DECODE_SLOTS",
    "MAX_INFLATED_BYTES",
    "MAX_REFERENCE_BYTES",
    "ImageInfo",
    "InflateLimitError",
    "PreparedImage",
    "embed_metadata",
    "inflate_capped",
    "inspect_image",
    "prepare_reference",
    "prepare_references",
    "read_metadata",
]
