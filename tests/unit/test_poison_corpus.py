"""The decoder against the poison corpus (fast, no broker): each bad kind is rejected at its stage with a
reason naming its field, each valid edge case becomes an event that passes the service's rules."""

from __future__ import annotations

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from forwarder.config import MappingConfig
from forwarder.decode import Decoder, Event
from forwarder.outcome import Envelope, Reason
from forwarder.personalize import limits
from tests.corpus import Case, load_corpus
from tests.support import request_of

CASES = load_corpus()


def test_the_corpus_has_at_least_30_bad_kinds() -> None:
    assert len({c.name for c in CASES if c.bad}) >= 30
    assert len({c.name for c in CASES}) == len(CASES), "names are unique"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case(case: Case) -> None:
    message = Message(
        topic="t",
        partition=0,
        offset=1,
        value=case.value,
        headers=case.headers,
        timestamp=(TIMESTAMP_CREATE_TIME, 1),
    )
    result = Decoder(MappingConfig(), "trk").decode(Envelope(message))
    if not case.bad:
        assert isinstance(result, Event), result
        assert limits.check_request(request_of(result)) is None
        return
    assert isinstance(result, Reason), f"{case.name} was accepted: {result}"
    assert result.stage == case.stage
    assert result.message.startswith(case.field), result.message
