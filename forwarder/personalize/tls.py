"""TLS for both transports: one CA bundle, verification always on, and what a verification failure is.

The bundle that verifies the endpoint's certificate is, first found: ``personalize.ca_bundle``; the
AWS SDK's own setting (``AWS_CA_BUNDLE``, else ``ca_bundle`` in the AWS config profile); botocore's
default (certifi's bundle). The ``boto3`` transport passes it to the client as ``verify``; the ``fast``
transport builds its SSL context from it, used directly and through a proxy alike. Verification cannot
be turned off.

A certificate that does not verify is an outage, not a broken connection: retrying cannot help and the
messages are not at fault, so :func:`verification_outage` names the bundle and the keys that choose it,
and the sender pauses and probes (nothing is dead-lettered).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from botocore.httpsession import get_cert_path

from forwarder.config import PersonalizeConfig
from forwarder.personalize.errors import Outage

OUTAGE_CODE: Final = "TLSCertificateNotVerified"
_SETTINGS: Final = "personalize.ca_bundle or AWS_CA_BUNDLE"


@dataclass(frozen=True, slots=True)
class CaBundle:
    """The CA bundle file in use and the setting it comes from (for log lines)."""

    path: str
    source: str

    def context(self) -> ssl.SSLContext:
        """A client context trusting this bundle only; hostname checked, certificates required.

        :class:`ValueError` naming the setting if the file cannot be read as PEM certificates.
        """
        try:
            return ssl.create_default_context(cafile=self.path)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{self.source}: cannot read the CA bundle {self.path!r}: {exc}") from None


def ca_bundle(cfg: PersonalizeConfig, session: Any) -> CaBundle:
    """The bundle for ``cfg`` and the boto3 ``session`` (whose config chain reads ``AWS_CA_BUNDLE`` and
    the profile's ``ca_bundle``), as described in the module's docstring."""
    if cfg.ca_bundle is not None:
        return CaBundle(str(cfg.ca_bundle), "personalize.ca_bundle")
    # botocore's own resolution (environment, then profile); boto3 has no public accessor for its session.
    configured = session._session.get_config_variable("ca_bundle")
    if configured:
        source = (
            "AWS_CA_BUNDLE"
            if os.environ.get("AWS_CA_BUNDLE") == configured
            else "the AWS profile's ca_bundle"
        )
        return CaBundle(str(configured), source)
    return CaBundle(str(get_cert_path(True)), "botocore's default bundle")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps: causes, contexts, and the ones libraries keep as attributes
    or arguments (botocore's ``error=``, urllib3's first argument, aiohttp's ``certificate_error``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked: list[Any] = [
            current.__cause__,
            current.__context__,
            getattr(current, "certificate_error", None),
        ]
        linked.extend(
            getattr(current, "kwargs", {}).values()
            if isinstance(getattr(current, "kwargs", None), dict)
            else ()
        )
        linked.extend(current.args)
        todo.extend(item for item in linked if isinstance(item, BaseException))


def is_verification_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the peer's certificate did not verify."""
    for current in _causes(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
    return False


def verification_outage(exc: BaseException, url: str, bundle: CaBundle) -> Outage:
    """The outage a certificate that did not verify amounts to; its message names the bundle and the
    settings that choose it."""
    detail = next(
        (
            str(getattr(c, "verify_message", None) or c)
            for c in _causes(exc)
            if isinstance(c, ssl.SSLCertVerificationError)
        ),
        str(exc),
    )
    return Outage(
        OUTAGE_CODE,
        f"the TLS certificate of {url} did not verify ({detail}) against the CA bundle {bundle.path} "
        f"(from {bundle.source}); set {_SETTINGS} to the bundle of the CA that signed it",
    )
