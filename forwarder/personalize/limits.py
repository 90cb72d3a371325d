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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


def check_string(path: str, value: object, max_length: int, required: bool = False) -> str | None:
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
    return check_json_properties(path, value, MAX_PROPERTIES_LENGTH, True)


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
    return _check_ids(path, value, "item", MAX_IMPRESSIONS, MAX_IMPRESSION_TOTAL_LENGTH)


def _check_ids(path: str, value: object, of: str, most: int, joined: int | None = None) -> str | None:
    """An impression: absent, or a list of 1..``most`` ids (of items, of actions) of 1..256 characters,
    at most ``joined`` characters joined by "|" when given."""
    if value is None:
        return None
    if not isinstance(value, list):
        return f"{path}: must be a list of {of} ids, got {type(value).__name__}"
    if not value:
        return f"{path}: must hold at least 1 {of} id"
    if len(value) > most:
        return f"{path}: {len(value)} {of} ids is more than {most}"
    for i, item in enumerate(value):
        problem = check_string(f"{path}[{i}]", item, MAX_ID_LENGTH, True)
        if problem:
            return problem
    if joined is not None:
        total = sum(len(item) for item in value) + len(value) - 1
        if total > joined:
            return f"{path}: {total} characters joined is more than {joined}"
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


def _check_event_value(path: str, value: object) -> str | None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not _is_finite(value)
    ):
        return f"{path}: must be a finite number, got {value!r}"
    return None


# The checks of a record's fields, in the order the first problem is reported: (field, check, the check's
# arguments after the field's path and value). One table per kind of record; :func:`_check_fields` runs one.
Check = Callable[..., str | None]
Fields = tuple[tuple[str, Check, tuple[Any, ...]], ...]
_ID: Final = (MAX_ID_LENGTH,)
_REQUIRED_ID: Final = (MAX_ID_LENGTH, True)

_EVENT: Final[Fields] = (
    ("eventType", check_string, _REQUIRED_ID),
    ("sentAt", check_sent_at, ()),
    ("eventId", check_string, _ID),
    ("itemId", check_string, _ID),
    ("recommendationId", check_string, (MAX_RECOMMENDATION_ID_LENGTH,)),
    ("properties", check_properties, ()),
    ("impression", check_impression, ()),
    ("metricAttribution", check_metric_attribution, ()),
    ("eventValue", _check_event_value, ()),
)


def _check_fields(
    record: Mapping[str, Any], prefix: str, known: frozenset[str], fields: Fields
) -> str | None:
    """No field outside ``known``, then each check of ``fields`` in order; paths start with ``prefix``
    (``eventList[2].``, or ``""`` for a request body's own fields)."""
    unknown = sorted(set(record) - known)
    if unknown:
        return f"{prefix}{unknown[0]}: unknown field"
    for name, check, args in fields:
        problem = check(f"{prefix}{name}", record.get(name), *args)
        if problem:
            return problem
    return None


def explain_event(ev: Mapping[str, Any], path: str = "event") -> str | None:
    """The full check of one event: None, or the first problem, naming its field."""
    return _check_fields(ev, f"{path}.", EVENT_FIELDS, _EVENT)


def check_event_size(path: str, encoded: bytes) -> str | None:
    """An event, encoded as JSON, may take at most 10 KB."""
    if len(encoded) > MAX_EVENT_BYTES:
        return f"{path}: {len(encoded)} bytes is more than the {MAX_EVENT_BYTES} bytes an event may have"
    return None


_REQUEST: Final[Fields] = (
    ("trackingId", check_string, _REQUIRED_ID),
    ("sessionId", check_string, _REQUIRED_ID),
    ("userId", check_string, _ID),
)


def _check_event_in_call(ev: Mapping[str, Any], path: str) -> str | None:
    return check_event(ev, path) or check_event_size(path, orjson.dumps(ev))


def check_request(body: object) -> str | None:
    """Check a whole PutEvents request body as it arrives on the wire."""
    return _check_body(body, _REQUEST, REQUEST_FIELDS, _EVENT_LIST, _check_event_in_call)


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


def check_json_properties(path: str, value: object, max_length: int, reserved: bool = False) -> str | None:
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


class _RecordList(NamedTuple):
    """A request's list of records: its field, what one is called, and at most how many a call holds.
    ``objects_first``: every element is checked to be an object before any is checked further (the
    catalogue and action interaction requests), rather than each in turn (PutEvents)."""

    field: str
    noun: str
    most: int
    objects_first: bool


@dataclass(frozen=True, slots=True)
class RecordShape:
    """One kind of catalogue record (an item, a user, an action): its id field and properties limit."""

    list_field: str  # the request's list: items, users, actions
    id_field: str  # itemId, userId, actionId
    max_properties: int
    # Built once: a record's known fields and its checks (for :func:`_check_fields`), and its request's list.
    known: frozenset[str] = field(init=False, repr=False, compare=False)
    fields: Fields = field(init=False, repr=False, compare=False)
    records: _RecordList = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (
            (self.id_field, check_string, _REQUIRED_ID),
            ("properties", check_json_properties, (self.max_properties,)),
        )
        object.__setattr__(self, "known", frozenset({self.id_field, "properties"}))
        object.__setattr__(self, "fields", fields)
        object.__setattr__(
            self, "records", _RecordList(self.list_field, "record", MAX_RECORDS_PER_CALL, True)
        )


ITEM: Final = RecordShape("items", "itemId", MAX_ITEM_PROPERTIES_LENGTH)
USER: Final = RecordShape("users", "userId", MAX_USER_PROPERTIES_LENGTH)
ACTION: Final = RecordShape("actions", "actionId", MAX_ACTION_PROPERTIES_LENGTH)


def check_catalog_record(shape: RecordShape, record: Mapping[str, Any], path: str) -> str | None:
    """One item, user or action in its wire form: its id (1..256, required) and its properties."""
    return _check_fields(record, f"{path}.", shape.known, shape.fields)


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


_ACTION_INTERACTION: Final[Fields] = (
    ("actionId", check_string, _REQUIRED_ID),
    ("sessionId", check_string, _REQUIRED_ID),
    ("eventType", check_string, _REQUIRED_ID),
    ("timestamp", check_sent_at, ()),
    ("userId", check_string, _ID),
    ("eventId", check_string, _ID),
    ("recommendationId", check_string, (MAX_RECOMMENDATION_ID_LENGTH,)),
    # The model sets no joined length for action ids, unlike an event's impression.
    ("impression", _check_ids, ("action", MAX_ACTION_IMPRESSIONS)),
    ("properties", check_json_properties, (MAX_ACTION_INTERACTION_PROPERTIES_LENGTH, True)),
)


def check_action_interaction(record: Mapping[str, Any], path: str) -> str | None:
    """One action interaction in its wire form (timestamp a number of epoch seconds, properties a string)."""
    return _check_fields(record, f"{path}.", ACTION_INTERACTION_FIELDS, _ACTION_INTERACTION)


_EVENT_LIST: Final = _RecordList("eventList", "event", MAX_EVENTS_PER_CALL, False)


def _check_list(records: _RecordList, value: object) -> str | None:
    name = records.field
    if value is None:
        return f"{name}: is required"
    if not isinstance(value, list):
        return f"{name}: must be a list, got {type(value).__name__}"
    if not value:
        return f"{name}: must hold at least 1 {records.noun}"
    if len(value) > records.most:
        return f"{name}: {len(value)} {records.noun}s is more than {records.most}"
    return None


def _check_body(
    body: object,
    fields: Fields,
    known: frozenset[str],
    records: _RecordList,
    check_record: Callable[[Mapping[str, Any], str], str | None],
) -> str | None:
    """A whole request body as it arrives on the wire: an object of no field outside ``known``, its own
    ``fields``, then its list of ``records``, each by ``check_record``."""
    if not isinstance(body, Mapping):
        return "request body must be a JSON object"
    value = body.get(records.field)
    problem = _check_fields(body, "", known, fields) or _check_list(records, value)
    if problem:
        return problem
    assert isinstance(value, list)
    if records.objects_first:
        for i, record in enumerate(value):
            if not isinstance(record, Mapping):
                return f"{records.field}[{i}]: must be an object"
    for i, record in enumerate(value):
        path = f"{records.field}[{i}]"
        if not isinstance(record, Mapping):
            return f"{path}: must be an object"
        problem = check_record(record, path)
        if problem:
            return problem
    return None


_DATASET: Final[Fields] = (("datasetArn", check_dataset_arn, ()),)
_TRACKING: Final[Fields] = (("trackingId", check_string, _REQUIRED_ID),)
_ACTION_INTERACTIONS: Final = _RecordList("actionInteractions", "record", MAX_RECORDS_PER_CALL, True)


def check_catalog_request(shape: RecordShape, body: object) -> str | None:
    """Check a whole PutItems, PutUsers or PutActions request body as it arrives on the wire."""
    return _check_body(
        body,
        _DATASET,
        frozenset({"datasetArn", shape.list_field}),
        shape.records,
        lambda record, path: check_catalog_record(shape, record, path),
    )


def check_action_interactions_request(body: object) -> str | None:
    """Check a whole PutActionInteractions request body as it arrives on the wire."""
    return _check_body(
        body,
        _TRACKING,
        frozenset({"trackingId", "actionInteractions"}),
        _ACTION_INTERACTIONS,
        check_action_interaction,
    )
