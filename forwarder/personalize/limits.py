"""The rules Amazon Personalize's write operations apply to a request, in one place.

botocore checks only required fields, types and minimums; the service rejects everything else
with ``InvalidInputException``. The forwarder checks each decoded event with :func:`check_event`
before sending it, and the emulator checks each request with :func:`check_request`, so the two
agree by construction and the tests of either side exercise the same rules.

Every function returns ``None`` when the input is acceptable, or a message that starts with the
dotted path of the offending field (``eventList[2].recommendationId: ...``), which is what a user
needs to find the problem in their own data.

Lengths are counted in Unicode code points, as the service's model (Smithy ``@length``) counts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson

MAX_EVENTS_PER_CALL: Final = 10
MAX_ID_LENGTH: Final = 256  # trackingId, userId, sessionId, eventId, eventType, itemId, impression ids
MAX_RECOMMENDATION_ID_LENGTH: Final = 40
MAX_PROPERTIES_LENGTH: Final = 1024
MAX_IMPRESSIONS: Final = 25
MAX_IMPRESSION_TOTAL_LENGTH: Final = 1000  # the service stores impressions joined by "|"
MAX_ATTRIBUTION_SOURCE_LENGTH: Final = 1024
MAX_EVENT_BYTES: Final = 10 * 1024
# Epoch seconds of 9999-12-31T23:59:59Z: the service's timestamps are calendar dates.
MAX_SENT_AT: Final = 253402300799.0
RESERVED_PROPERTY_KEYS: Final = frozenset(
    {"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"}
)

EVENT_FIELDS: Final = frozenset(
    {
        "eventId",
        "eventType",
        "eventValue",
        "itemId",
        "properties",
        "sentAt",
        "recommendationId",
        "impression",
        "metricAttribution",
    }
)
REQUEST_FIELDS: Final = frozenset({"trackingId", "userId", "sessionId", "eventList"})


def check_string(path: str, value: object, max_length: int, *, required: bool = False) -> str | None:
    """Check one string field: present if required, a string, 1..max_length code points."""
    if value is None:
        return f"{path}: is required" if required else None
    if not isinstance(value, str):
        return f"{path}: must be a string, got {type(value).__name__}"
    if not value:
        return f"{path}: must not be empty"
    if len(value) > max_length:
        return f"{path}: length {len(value)} is more than {max_length}"
    return None


def check_properties(path: str, value: object) -> str | None:
    """``properties`` is a string of at most 1024 characters holding a JSON object without reserved keys."""
    problem = check_string(path, value, MAX_PROPERTIES_LENGTH)
    if problem or value is None:
        return problem
    assert isinstance(value, str)
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"{path}: Error parsing properties json"
    if not isinstance(parsed, dict):
        return f"{path}: must be a JSON object, got {type(parsed).__name__}"
    reserved = sorted(k for k in parsed if k.lower() in RESERVED_PROPERTY_KEYS)
    if reserved:
        return f"{path}: reserved key(s) not allowed: {', '.join(reserved)}"
    return None


def _is_finite(value: float) -> bool:
    """``math.isfinite``, but False rather than OverflowError for an int beyond a float's range."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_sent_at(path: str, value: object) -> str | None:
    """``sentAt`` is epoch seconds, finite, not negative, before the year 10000."""
    if value is None:
        return f"{path}: is required"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{path}: must be a number of epoch seconds, got {type(value).__name__}"
    if not _is_finite(value) or value < 0 or value > MAX_SENT_AT:
        return f"{path}: {value!r} is not a timestamp between 1970 and 9999"
    return None


def check_impression(path: str, value: object) -> str | None:
    """``impression`` is a list of 1..25 item ids of 1..256 characters, at most 1000 characters joined."""
    if value is None:
        return None
    if not isinstance(value, list):
        return f"{path}: must be a list of item ids, got {type(value).__name__}"
    if not value:
        return f"{path}: must hold at least 1 item id"
    if len(value) > MAX_IMPRESSIONS:
        return f"{path}: {len(value)} item ids is more than {MAX_IMPRESSIONS}"
    for i, item in enumerate(value):
        problem = check_string(f"{path}[{i}]", item, MAX_ID_LENGTH, required=True)
        if problem:
            return problem
    total = sum(len(item) for item in value) + len(value) - 1
    if total > MAX_IMPRESSION_TOTAL_LENGTH:
        return f"{path}: {total} characters joined is more than {MAX_IMPRESSION_TOTAL_LENGTH}"
    return None


def check_metric_attribution(path: str, value: object) -> str | None:
    """``metricAttribution`` is an object with a printable-ASCII, not blank ``eventAttributionSource``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return f"{path}: must be an object, got {type(value).__name__}"
    unknown = sorted(set(value) - {"eventAttributionSource"})
    if unknown:
        return f"{path}.{unknown[0]}: unknown field"
    source = value.get("eventAttributionSource")
    field = f"{path}.eventAttributionSource"
    if source is None:
        return f"{field}: is required"
    if not isinstance(source, str):
        return f"{field}: must be a string, got {type(source).__name__}"
    if len(source) > MAX_ATTRIBUTION_SOURCE_LENGTH:
        return f"{field}: length {len(source)} is more than {MAX_ATTRIBUTION_SOURCE_LENGTH}"
    # The model's pattern is ^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$: printable ASCII with at least one
    # character that is not a space. Checked without that regex: re backtracks on it in cubic time (2 s for
    # 1024 characters ending in a bad one) and its "$" would let a trailing newline through.
    if not (source.isascii() and source.isprintable() and source.strip(" ")):
        return f"{field}: must be printable ASCII and not blank"
    return None


def check_event(
    ev: Mapping[str, Any], path: str = "event", properties_object: Mapping[str, Any] | None = None
) -> str | None:
    """Check one event of ``eventList`` in its wire form (sentAt a number, properties a string).

    The size limit is checked apart, by :func:`check_event_size`, because callers that already hold
    the encoded event should not encode it twice. A caller that wrote ``properties`` itself by encoding
    an object passes that object as ``properties_object``: its keys are checked without parsing the text
    again.
    """
    if _event_ok(ev, properties_object):
        return None
    return explain_event(ev, path)


def _event_ok(ev: Mapping[str, Any], properties_object: Mapping[str, Any] | None = None) -> bool:
    """A fast, conservative pre-check on the per-event path: True only for events :func:`explain_event`
    accepts (a property test holds it to that). It may say False for a valid event (e.g. one with
    metricAttribution, or str subclasses): the full check then decides. Comparisons with NaN are
    false, so NaN never passes."""
    if not EVENT_FIELDS.issuperset(ev):
        return False
    value: Any = ev.get("eventType")
    if value.__class__ is not str or not 0 < len(value) <= MAX_ID_LENGTH:
        return False
    value = ev.get("sentAt")
    if value.__class__ is not float and value.__class__ is not int:
        return False
    if not 0 <= value <= MAX_SENT_AT:
        return False
    for name, limit in _OPTIONAL_STRINGS:
        value = ev.get(name)
        if value is not None and (value.__class__ is not str or not 0 < len(value) <= limit):
            return False
    value = ev.get("properties")
    if value is not None:
        if value.__class__ is not str or not 0 < len(value) <= MAX_PROPERTIES_LENGTH:
            return False
        parsed: Any = properties_object
        if parsed is None:
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                return False
            if parsed.__class__ is not dict:
                return False
        for key in parsed:
            if key.lower() in RESERVED_PROPERTY_KEYS:
                return False
    value = ev.get("impression")
    if value is not None:
        if value.__class__ is not list or not 0 < len(value) <= MAX_IMPRESSIONS:
            return False
        total = len(value) - 1
        for item in value:
            if item.__class__ is not str or not 0 < len(item) <= MAX_ID_LENGTH:
                return False
            total += len(item)
        if total > MAX_IMPRESSION_TOTAL_LENGTH:
            return False
    if ev.get("metricAttribution") is not None:
        return False
    value = ev.get("eventValue")
    if value is not None:
        if value.__class__ is float:
            return bool(-math.inf < value < math.inf)
        return value.__class__ is int and _is_finite(value)
    return True


_OPTIONAL_STRINGS: Final = (
    ("eventId", MAX_ID_LENGTH),
    ("itemId", MAX_ID_LENGTH),
    ("recommendationId", MAX_RECOMMENDATION_ID_LENGTH),
)


def explain_event(ev: Mapping[str, Any], path: str = "event") -> str | None:
    """The full check of one event: None, or the first problem, naming its field."""
    unknown = sorted(set(ev) - EVENT_FIELDS)
    if unknown:
        return f"{path}.{unknown[0]}: unknown field"
    problem = (
        check_string(f"{path}.eventType", ev.get("eventType"), MAX_ID_LENGTH, required=True)
        or check_sent_at(f"{path}.sentAt", ev.get("sentAt"))
        or check_string(f"{path}.eventId", ev.get("eventId"), MAX_ID_LENGTH)
        or check_string(f"{path}.itemId", ev.get("itemId"), MAX_ID_LENGTH)
        or check_string(f"{path}.recommendationId", ev.get("recommendationId"), MAX_RECOMMENDATION_ID_LENGTH)
        or check_properties(f"{path}.properties", ev.get("properties"))
        or check_impression(f"{path}.impression", ev.get("impression"))
        or check_metric_attribution(f"{path}.metricAttribution", ev.get("metricAttribution"))
    )
    if problem:
        return problem
    value = ev.get("eventValue")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not _is_finite(value)
    ):
        return f"{path}.eventValue: must be a finite number, got {value!r}"
    return None


def check_event_size(path: str, encoded: bytes) -> str | None:
    """An event, encoded as JSON, may take at most 10 KB."""
    if len(encoded) > MAX_EVENT_BYTES:
        return f"{path}: {len(encoded)} bytes is more than the {MAX_EVENT_BYTES} bytes an event may have"
    return None


def check_request(body: object) -> str | None:
    """Check a whole PutEvents request body as it arrives on the wire."""
    if not isinstance(body, Mapping):
        return "request body must be a JSON object"
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        return f"{unknown[0]}: unknown field"
    problem = (
        check_string("trackingId", body.get("trackingId"), MAX_ID_LENGTH, required=True)
        or check_string("sessionId", body.get("sessionId"), MAX_ID_LENGTH, required=True)
        or check_string("userId", body.get("userId"), MAX_ID_LENGTH)
    )
    if problem:
        return problem
    events = body.get("eventList")
    if events is None:
        return "eventList: is required"
    if not isinstance(events, list):
        return f"eventList: must be a list, got {type(events).__name__}"
    if not events:
        return "eventList: must hold at least 1 event"
    if len(events) > MAX_EVENTS_PER_CALL:
        return f"eventList: {len(events)} events is more than {MAX_EVENTS_PER_CALL}"
    for i, ev in enumerate(events):
        if not isinstance(ev, Mapping):
            return f"eventList[{i}]: must be an object"
        problem = check_event(ev, f"eventList[{i}]") or check_event_size(f"eventList[{i}]", orjson.dumps(ev))
        if problem:
            return problem
    return None


# ---------------------------------------------------------------------------------------------------------
# The other four write operations. Written out from botocore's service model ``personalize-events``
# (data/personalize-events/2018-03-22/service-2.json, read from botocore 1.44.8); a unit test
# (tests/unit/test_operation_limits.py) compares every constant below with the installed model, so an SDK
# upgrade that changes one fails there instead of drifting. The model gives lengths, list sizes, required
# fields and the datasetArn pattern; the rate quotas are not in the model (see CALLS_PER_SECOND).

MAX_RECORDS_PER_CALL: Final = 10  # items, users, actions, actionInteractions: 1..10 per call
MAX_ARN_LENGTH: Final = 256
# The model's pattern for datasetArn, matched as Smithy does: anywhere in the string (re.search).
DATASET_ARN_PATTERN: Final = r"arn:([a-z\d-]+):personalize:.*:.*:.+"
MAX_ITEM_PROPERTIES_LENGTH: Final = 32_000
MAX_USER_PROPERTIES_LENGTH: Final = 24_000
MAX_ACTION_PROPERTIES_LENGTH: Final = 32_000
MAX_ACTION_INTERACTION_PROPERTIES_LENGTH: Final = 1_024
MAX_ACTION_IMPRESSIONS: Final = 25

# Rate quotas per operation, from the Amazon Personalize developer guide's "endpoints and quotas" page
# (docs.aws.amazon.com/personalize/latest/dg/limits.html; its "Data import APIs" table, as kept in the
# awsdocs/amazon-personalize-developer-guide repository, doc_source/limits.md): "Maximum rate of PutEvents
# requests: 1000/second", "of PutItems requests: 10/second", "of PutUsers requests: 10/second". The page
# as found states no rate for PutActions nor PutActionInteractions: ``None`` means "not documented", not
# "unlimited"; a route's limiter needs its own setting for those.
CALLS_PER_SECOND: Final[dict[str, float | None]] = {
    "PutEvents": 1000.0,
    "PutItems": 10.0,
    "PutUsers": 10.0,
    "PutActions": None,
    "PutActionInteractions": None,
}


def check_dataset_arn(path: str, value: object) -> str | None:
    """``datasetArn``: required, a string of at most 256 characters matching the model's pattern."""
    if value is None:
        return f"{path}: is required"
    if not isinstance(value, str):
        return f"{path}: must be a string, got {type(value).__name__}"
    if len(value) > MAX_ARN_LENGTH:
        return f"{path}: length {len(value)} is more than {MAX_ARN_LENGTH}"
    if _DATASET_ARN.search(value) is None:
        return f"{path}: {value[:80]!r} is not a Personalize ARN (arn:<partition>:personalize:...)"
    return None


_DATASET_ARN: Final = re.compile(DATASET_ARN_PATTERN, re.DOTALL)


def check_json_properties(path: str, value: object, max_length: int, *, reserved: bool = False) -> str | None:
    """``properties`` of an item, user, action or action interaction: a string of 1..max_length code
    points holding a JSON object (without the reserved keys of an interaction when ``reserved``)."""
    problem = check_string(path, value, max_length)
    if problem or value is None:
        return problem
    assert isinstance(value, str)
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"{path}: Error parsing properties json"
    if not isinstance(parsed, dict):
        return f"{path}: must be a JSON object, got {type(parsed).__name__}"
    if reserved:
        keys = sorted(k for k in parsed if k.lower() in RESERVED_PROPERTY_KEYS)
        if keys:
            return f"{path}: reserved key(s) not allowed: {', '.join(keys)}"
    return None


class RecordShape(NamedTuple):
    """One kind of catalogue record (an item, a user, an action): its id field and properties limit."""

    list_field: str  # the request's list: items, users, actions
    id_field: str  # itemId, userId, actionId
    max_properties: int


ITEM: Final = RecordShape("items", "itemId", MAX_ITEM_PROPERTIES_LENGTH)
USER: Final = RecordShape("users", "userId", MAX_USER_PROPERTIES_LENGTH)
ACTION: Final = RecordShape("actions", "actionId", MAX_ACTION_PROPERTIES_LENGTH)


def check_catalog_record(shape: RecordShape, record: Mapping[str, Any], path: str) -> str | None:
    """One item, user or action in its wire form: its id (1..256, required) and its properties."""
    unknown = sorted(set(record) - {shape.id_field, "properties"})
    if unknown:
        return f"{path}.{unknown[0]}: unknown field"
    return check_string(
        f"{path}.{shape.id_field}", record.get(shape.id_field), MAX_ID_LENGTH, required=True
    ) or check_json_properties(f"{path}.properties", record.get("properties"), shape.max_properties)


ACTION_INTERACTION_FIELDS: Final = frozenset(
    {
        "actionId",
        "userId",
        "sessionId",
        "timestamp",
        "eventType",
        "eventId",
        "recommendationId",
        "impression",
        "properties",
    }
)


def check_action_interaction(record: Mapping[str, Any], path: str) -> str | None:
    """One action interaction in its wire form (timestamp a number of epoch seconds, properties a string)."""
    unknown = sorted(set(record) - ACTION_INTERACTION_FIELDS)
    if unknown:
        return f"{path}.{unknown[0]}: unknown field"
    return (
        check_string(f"{path}.actionId", record.get("actionId"), MAX_ID_LENGTH, required=True)
        or check_string(f"{path}.sessionId", record.get("sessionId"), MAX_ID_LENGTH, required=True)
        or check_string(f"{path}.eventType", record.get("eventType"), MAX_ID_LENGTH, required=True)
        or check_sent_at(f"{path}.timestamp", record.get("timestamp"))
        or check_string(f"{path}.userId", record.get("userId"), MAX_ID_LENGTH)
        or check_string(f"{path}.eventId", record.get("eventId"), MAX_ID_LENGTH)
        or check_string(
            f"{path}.recommendationId", record.get("recommendationId"), MAX_RECOMMENDATION_ID_LENGTH
        )
        or _check_action_impression(f"{path}.impression", record.get("impression"))
        or check_json_properties(
            f"{path}.properties",
            record.get("properties"),
            MAX_ACTION_INTERACTION_PROPERTIES_LENGTH,
            reserved=True,
        )
    )


def _check_action_impression(path: str, value: object) -> str | None:
    """``impression`` of an action interaction: 1..25 action ids of 1..256 characters (the model sets no
    joined length, unlike an event's)."""
    if value is None:
        return None
    if not isinstance(value, list):
        return f"{path}: must be a list of action ids, got {type(value).__name__}"
    if not value:
        return f"{path}: must hold at least 1 action id"
    if len(value) > MAX_ACTION_IMPRESSIONS:
        return f"{path}: {len(value)} action ids is more than {MAX_ACTION_IMPRESSIONS}"
    for i, action_id in enumerate(value):
        problem = check_string(f"{path}[{i}]", action_id, MAX_ID_LENGTH, required=True)
        if problem:
            return problem
    return None


def _check_list(name: str, value: object) -> str | None:
    if value is None:
        return f"{name}: is required"
    if not isinstance(value, list):
        return f"{name}: must be a list, got {type(value).__name__}"
    if not value:
        return f"{name}: must hold at least 1 record"
    if len(value) > MAX_RECORDS_PER_CALL:
        return f"{name}: {len(value)} records is more than {MAX_RECORDS_PER_CALL}"
    for i, record in enumerate(value):
        if not isinstance(record, Mapping):
            return f"{name}[{i}]: must be an object"
    return None


def check_catalog_request(shape: RecordShape, body: object) -> str | None:
    """Check a whole PutItems, PutUsers or PutActions request body as it arrives on the wire."""
    if not isinstance(body, Mapping):
        return "request body must be a JSON object"
    unknown = sorted(set(body) - {"datasetArn", shape.list_field})
    if unknown:
        return f"{unknown[0]}: unknown field"
    records = body.get(shape.list_field)
    problem = check_dataset_arn("datasetArn", body.get("datasetArn")) or _check_list(
        shape.list_field, records
    )
    if problem:
        return problem
    assert isinstance(records, list)
    for i, record in enumerate(records):
        problem = check_catalog_record(shape, record, f"{shape.list_field}[{i}]")
        if problem:
            return problem
    return None


def check_action_interactions_request(body: object) -> str | None:
    """Check a whole PutActionInteractions request body as it arrives on the wire."""
    if not isinstance(body, Mapping):
        return "request body must be a JSON object"
    unknown = sorted(set(body) - {"trackingId", "actionInteractions"})
    if unknown:
        return f"{unknown[0]}: unknown field"
    records = body.get("actionInteractions")
    problem = check_string("trackingId", body.get("trackingId"), MAX_ID_LENGTH, required=True) or _check_list(
        "actionInteractions", records
    )
    if problem:
        return problem
    assert isinstance(records, list)
    for i, record in enumerate(records):
        problem = check_action_interaction(record, f"actionInteractions[{i}]")
        if problem:
            return problem
    return None
