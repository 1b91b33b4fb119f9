"""permessage-deflate (RFC 7692) that costs nothing where it cannot help.

websockets' extension compresses every message and allocates both zlib
streams when the extension is negotiated.  Most OCPP messages are small
(a Heartbeat and its answer are 57 and 85 bytes): compressing one costs about
6 µs of CPU to save a few dozen bytes, and the two zlib streams cost an idle
connection some 40 KiB (``benchmarks/deflate_threshold.py`` has the
figures).  So this extension

- sends a message below ``threshold`` bytes uncompressed, as RFC 7692 §6.1
  allows a sender to ("an endpoint MAY ... send a message without
  compressing it": the RSV1 bit clear; the compressor's context is untouched,
  so context takeover carries on across it), the same rule as Node's ``ws``
  (1,024 bytes by default);
- makes its compressor on the first message it compresses, and its
  decompressor on the first compressed message it receives: a station that
  never sends or receives a large message never has either.

Everything else (negotiation, the decoding rules, the inflated-size bound) is
websockets' own.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Final

from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

#: Messages smaller than this many bytes are sent uncompressed (Node's ``ws`` uses 1,024 too).
DEFAULT_COMPRESSION_THRESHOLD: Final = 1024

_CONT: Final = Opcode.CONT


def check_threshold(threshold: object) -> int:
    """``threshold`` if it is a valid ``compression_threshold``; else ValueError."""
    if not (isinstance(threshold, int) and threshold >= 0):
        raise ValueError(f"compression_threshold must be an integer >= 0, got {threshold!r}")
    return threshold


class LazyDeflate(PerMessageDeflate):
    """websockets' ``PerMessageDeflate``, lazy, with a size threshold (see the module docstring)."""

    def __init__(self, negotiated: PerMessageDeflate, threshold: int) -> None:
        # Built with no context takeover on either side, the parent allocates
        # no zlib stream; the negotiated flags are put back right after.
        super().__init__(
            True,
            True,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        self.remote_no_context_takeover = negotiated.remote_no_context_takeover
        self.local_no_context_takeover = negotiated.local_no_context_takeover
        self.threshold = threshold

    def __getattr__(self, name: str) -> Any:
        # Only reached while the attribute is missing: the first use of a
        # stream makes it, later uses find it in the instance dict.
        if name == "decoder":
            self.decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            return self.decoder
        if name == "encoder":
            self.encoder = zlib.compressobj(
                wbits=-self.local_max_window_bits, **self.compress_settings
            )
            return self.encoder
        raise AttributeError(name)

    def encode(self, frame: Frame) -> Frame:
        """Compress ``frame`` unless it is a whole message below the threshold."""
        if frame.opcode is not _CONT and frame.fin and len(frame.data) < self.threshold:
            return frame  # RSV1 clear: sent as is (RFC 7692 §6.1)
        return super().encode(frame)


def _lazy(extension: PerMessageDeflate, threshold: int) -> PerMessageDeflate:
    # The parent made ``extension`` with its zlib streams (about 0.6 µs, and
    # memory never touched): only its negotiated parameters are kept.
    return LazyDeflate(extension, threshold)


class ServerDeflateFactory(ServerPerMessageDeflateFactory):
    """The server's permessage-deflate offer handling, making :class:`LazyDeflate` extensions."""

    def __init__(self, *, threshold: int = DEFAULT_COMPRESSION_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, extension = super().process_request_params(params, accepted_extensions)
        return response, _lazy(extension, self.threshold)


class ClientDeflateFactory(ClientPerMessageDeflateFactory):
    """The client's permessage-deflate offer, making :class:`LazyDeflate` extensions."""

    def __init__(self, *, threshold: int = DEFAULT_COMPRESSION_THRESHOLD, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> PerMessageDeflate:
        return _lazy(super().process_response_params(params, accepted_extensions), self.threshold)
