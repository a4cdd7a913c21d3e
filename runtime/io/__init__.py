"""runtime.io: sans-IO codecs and Framed, frames over any Trio stream."""

from __future__ import annotations

from ._codec import BytesCodec as BytesCodec
from ._codec import Codec as Codec
from ._codec import Decoder as Decoder
from ._codec import Encoder as Encoder
from ._codec import FrameError as FrameError
from ._codec import FrameTooLarge as FrameTooLarge
from ._codec import LengthDelimitedCodec as LengthDelimitedCodec
from ._codec import LinesCodec as LinesCodec
from ._codec import ReadBuffer as ReadBuffer
from ._codec import TruncatedFrame as TruncatedFrame
from ._framed import Framed as Framed

__all__ = [
    "BytesCodec",
    "Codec",
    "Decoder",
    "Encoder",
    "FrameError",
    "FrameTooLarge",
    "Framed",
    "LengthDelimitedCodec",
    "LinesCodec",
    "ReadBuffer",
    "TruncatedFrame",
]
