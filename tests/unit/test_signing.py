"""The fast transport signs with botocore's SigV4Auth on a light request object: the headers must be
exactly those botocore produces on a real AWSRequest, for every shape of credentials and endpoint."""

from __future__ import annotations

import datetime as dt

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from forwarder.config import PersonalizeConfig
from forwarder.personalize.fast_transport import FastTransport

BODY = b'{"trackingId":"t","sessionId":"s","eventList":[{"eventId":"e","eventType":"view","sentAt":1}]}'


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:8080", "https://personalize-events.eu-west-1.amazonaws.com"]
)
@pytest.mark.parametrize("token", [None, "session-token-xyz"])
def test_light_signing_equals_botocore_on_awsrequest(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, token: str | None
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    else:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    frozen = dt.datetime(2026, 11, 29, 12, 0, 0)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)
    transport = FastTransport(
        PersonalizeConfig.model_validate(
            {"tracking_id": "t", "region": "eu-west-1", "endpoint_url": endpoint}
        )
    )
    credentials = boto3.session.Session().get_credentials().get_frozen_credentials()
    light = transport.signer.headers(BODY, credentials)
    again = transport.signer.headers(BODY, credentials)  # the cached key and host give the same result
    transport.signer._light = False
    full = transport.signer.headers(BODY, credentials)
    # And stock botocore: SigV4Auth itself on a real AWSRequest.
    request = AWSRequest(
        method="POST", url=f"{endpoint}/events", data=BODY, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials, "personalize", "eu-west-1").add_auth(request)
    stock = dict(request.headers.items())
    assert light == again == full == stock
    assert light["X-Amz-Date"] == "20261129T120000Z"
    assert "/eu-west-1/personalize/aws4_request" in light["Authorization"]
    assert ("X-Amz-Security-Token" in light) == (token is not None)
