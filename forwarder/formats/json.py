"""Plain JSON (no registry): the decoder's own orjson path, as a format for topic maps that mix formats."""

from __future__ import annotations

from typing import Any, Final

import orjson

from forwarder.formats.base import FormatError

_UTF8_BOM: Final = b"\xef\xbb\xbf"


class JsonFormat:
    """A UTF-8 JSON document (a byte order mark is skipped), with the decoder's own failure classes."""

    name = "json"

    def parse(self, value: bytes) -> Any:
        """orjson's object; ``NotUtf8`` or ``NotJson`` as a :class:`FormatError`."""
        if value[:3] == _UTF8_BOM:
            value = value[3:]
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            kind = "NotUtf8" if "UTF-8" in str(exc) else "NotJson"
            raise FormatError(kind, f"value: not a UTF-8 JSON document: {exc}") from None
