"""The fast pre-check of limits.check_event never accepts what the full check rejects."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.personalize import limits
from forwarder.personalize.limits import _event_ok, explain_event


def _near(limit: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=0, max_value=limit + 2).map(lambda n: "x" * n) | st.text(max_size=8)


NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**1100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, limits.MAX_SENT_AT, limits.MAX_SENT_AT + 1, 1714566896.5, True, False]),
)
ANY = st.one_of(st.none(), NUMBERS, st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3))
PROPERTIES = st.one_of(
    st.dictionaries(
        st.sampled_from(["a", "userId", "Timestamp", "ok", "IMPRESSION"]), st.integers(), max_size=3
    ).map(lambda d: __import__("json").dumps(d)),
    st.sampled_from(
        ["{}", "[]", "{bad", "", '{"k":"' + "v" * 1017 + '"}', '{"k":"' + "v" * 1016 + '"}', "null"]
    ),
)
IMPRESSIONS = st.one_of(
    st.lists(_near(256), max_size=27),
    st.lists(st.sampled_from(["a", "x" * 100, "", 5]), max_size=12),
)
VALID = {
    "eventId": "t:0:1",
    "eventType": "click",
    "sentAt": 1714566896.25,
    "itemId": "item-1",
    "eventValue": 9.5,
    "properties": '{"device":"ios","n":1}',
    "impression": ["a", "b", "c"],
    "recommendationId": "RID-1",
}
MUTATIONS = {
    "eventType": st.one_of(_near(256), ANY),
    "sentAt": st.one_of(NUMBERS, ANY),
    "eventId": st.one_of(_near(256), ANY),
    "itemId": st.one_of(_near(256), ANY),
    "recommendationId": st.one_of(_near(40), ANY),
    "properties": st.one_of(PROPERTIES, ANY),
    "impression": st.one_of(IMPRESSIONS, ANY),
    "eventValue": st.one_of(NUMBERS, ANY),
    "metricAttribution": st.one_of(st.just({"eventAttributionSource": "S"}), ANY),
    "unknownField": st.just(1),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with up to two fields changed (each to a value near a limit, or of another type)
    and some optional fields removed: most land near the boundary between valid and invalid."""
    event = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=2, unique=True)):
        event[name] = draw(MUTATIONS[name])
    for name in draw(
        st.lists(st.sampled_from(["eventId", "itemId", "properties", "impression", "eventValue"]))
    ):
        event.pop(name, None)
    return event


EVENTS = events()


@settings(max_examples=1500, deadline=None)
@given(EVENTS)
def test_the_fast_check_is_sound(event: dict[str, Any]) -> None:
    if _event_ok(event):
        assert explain_event(event) is None, event
    assert (limits.check_event(event) is None) == (explain_event(event) is None)


def test_the_fast_check_takes_typical_events() -> None:
    typical = VALID
    assert _event_ok(typical)
    assert _event_ok({"eventType": "view", "sentAt": 1714566896})
    assert not _event_ok({**typical, "eventValue": math.nan})
    assert not _event_ok({**typical, "sentAt": True})


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "userId", "Timestamp", "ok", "IMPRESSION", "x" * 1020]), st.integers()
    )
)
def test_a_given_properties_object_decides_as_parsing_would(properties: dict[str, int]) -> None:
    event = {**VALID, "properties": json.dumps(properties, separators=(",", ":"))}
    assert _event_ok(event, properties) == _event_ok(event)
