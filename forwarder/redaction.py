"""Redaction: credentials taken out of any text before it leaves the process.

One function, :func:`redact`, applied at the three exits where text from elsewhere (a service's error
message, an exception) can go: log lines (:class:`forwarder.logs.RedactingFormatter`), the probe bodies
(``/healthz``, ``/readyz``) and the dead-letter reason header.

Contract: every match of a credential pattern is replaced by :data:`REDACTED`; everything else is left as it
is. The patterns are AWS access key ids, secret access keys (40 characters of base64 with mixed case and a
digit), session tokens (100+ characters of base64), the values of ``Authorization`` and
``x-amz-security-token`` (as headers, query parameters, JSON fields or canonical-request lines),
``Credential=`` and ``Signature=`` of SigV4 text, and values of fields named like a secret
(``aws_secret_access_key``, ``SessionToken``, ``password``...). Redacting a text twice changes nothing more.
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "<redacted>"

# A header or field whose whole value is a credential: `Authorization: AWS4-HMAC-SHA256 Credential=...`,
# `x-amz-security-token:IQo...` (a canonical-request line), `"X-Amz-Security-Token": "..."`,
# `X-Amz-Security-Token=...&` (a presigned query). The value runs to the end of the line, a quote, or `&`.
_NAMED_VALUE: Final = re.compile(
    r"""(?ix)
    (?P<name>\b(?:authorization|x-amz-security-token|aws_secret_access_key|aws_session_token
        |secret_?access_?key|session_?token|security_?token|password|passwd)\b["']?)
    (?P<sep>\s*+[:=]\s*+["']?+)
    (?P<value>(?!<redacted>)[^\r\n"'&]+)
    """
)
# SigV4 parts outside a named header (an error message quoting the string to sign).
_SIGV4_PART: Final = re.compile(r"(?i)\b(?P<name>Credential|Signature)=(?P<value>(?!<redacted>)[^\s,&\"']+)")
_ACCESS_KEY_ID: Final = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b")
_LONG_BASE64: Final = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40,}={0,2}(?![A-Za-z0-9/+=])")


def _named(match: re.Match[str]) -> str:
    value = match.group("value")
    stripped = value.rstrip()
    return match.group("name") + match.group("sep") + REDACTED + value[len(stripped) :]


def _sigv4(match: re.Match[str]) -> str:
    return f"{match.group('name')}={REDACTED}"


def _base64(match: re.Match[str]) -> str:
    text = match.group(0)
    body = text.rstrip("=")
    kinds = sum(any(test(c) for c in body) for test in (str.islower, str.isupper, str.isdigit))
    if (len(body) >= 100 and kinds >= 2) or (len(body) == 40 and kinds == 3):
        return REDACTED  # a session token, or a secret access key
    return text


def redact(text: str) -> str:
    """``text`` with every credential pattern replaced by :data:`REDACTED`."""
    if not text:
        return text
    text = _NAMED_VALUE.sub(_named, text)
    text = _SIGV4_PART.sub(_sigv4, text)
    text = _ACCESS_KEY_ID.sub(REDACTED, text)
    return _LONG_BASE64.sub(_base64, text)
