"""The boto3 session and ``personalize-events`` client both transports start from.

boto3 supplies what neither transport should reimplement: the credential chain (environment, profile,
web identity, instance role; refreshed as they expire), the region and the endpoint (its endpoint rules,
or ``personalize.endpoint_url``). The SDK's own retries are off: the sender owns retries, so the two do
not multiply.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from forwarder.config import PersonalizeConfig


def boto_session() -> boto3.session.Session:
    """A new session: its own credential cache, so that transports do not share refresh state."""
    return boto3.session.Session()


def personalize_events_client(session: boto3.session.Session, cfg: PersonalizeConfig, *, verify: str) -> Any:
    """The ``personalize-events`` client for ``cfg``: one attempt a call, pool and timeouts from ``cfg``,
    TLS verified against the CA bundle ``verify`` (:func:`forwarder.personalize.tls.ca_bundle`)."""
    return session.client(
        "personalize-events",
        region_name=cfg.region,
        endpoint_url=cfg.endpoint_url,
        verify=verify,
        config=BotoConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},  # the sender owns retries
            max_pool_connections=cfg.max_in_flight,
            connect_timeout=min(cfg.request_timeout_s, 5.0),
            read_timeout=cfg.request_timeout_s,
            user_agent_extra="forwarder",
        ),
    )
