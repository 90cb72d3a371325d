"""The ``routes`` section: more Personalize write operations in the same daemon and consumer group.

Contract: a :class:`RouteConfig` is valid by construction for its operation: ``dataset_arn`` (matching
the API's pattern) for ``items``, ``users`` and ``actions``; ``tracking_id`` for ``action_interactions``;
a mapping whose keys belong to that operation. The events route is the top-level configuration
(``kafka.topics``, ``personalize.tracking_id``, ``mapping``, ``batching``), unchanged, so a file written
before routes existed loads as it did; ``routes`` lists the others. Cross-route rules (no topic in two
routes, unique names) are checked by :class:`forwarder.config.schema.Config`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forwarder.personalize import limits

RecordOperation = Literal["items", "users", "actions", "action_interactions"]
CATALOG_OPERATIONS: Final = frozenset({"items", "users", "actions"})
# What each record route's limiter starts from when max_calls_per_second is not set: the documented quota.
API_NAMES: Final = {
    "items": "PutItems",
    "users": "PutUsers",
    "actions": "PutActions",
    "action_interactions": "PutActionInteractions",
}
# Keys of a route's mapping that only one family of operations reads.
_CATALOG_KEYS: Final = frozenset({"id_path", "delete_field", "pick", "drop", "from_field"})
_INTERACTION_KEYS: Final = frozenset({"fields", "event_type", "impression_separator"})

NonEmptyStr = Annotated[str, Field(min_length=1)]


def split_topics(value: object) -> object:
    """A topics setting given as one comma-separated string (an environment variable) as its list of
    names, blanks dropped; any other value as it is, for the field's own validation."""
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteMapping(_Section):
    """How a route's messages become records; each operation reads its own keys.

    Catalog keys (items, users, actions): ``id_path``, ``delete_field``, ``pick``, ``drop``,
    ``from_field``; action-interaction keys: ``fields``, ``event_type``, ``impression_separator``; both:
    ``camel_case`` (docs/operations-apis.md). A key of the other family is refused.
    """

    id_path: NonEmptyStr | None = Field(
        default=None, description="Dotted path of the record's id (default: `itemId`, `userId`, `actionId`)."
    )
    delete_field: NonEmptyStr | None = Field(
        default=None,
        description="A field whose true value marks a delete: dead-lettered with stage `unsupported` "
        "(the API has no delete).",
    )
    pick: dict[str, NonEmptyStr] = Field(
        default_factory=dict, description="Only these properties: `name: dotted.path` (renames)."
    )
    drop: list[NonEmptyStr] = Field(default_factory=list, description="Fields never sent as properties.")
    from_field: NonEmptyStr | None = Field(
        default=None, description="One field that already holds the properties (object or JSON string)."
    )
    camel_case: bool = Field(default=True, description="Property keys written in camelCase.")
    fields: dict[NonEmptyStr, NonEmptyStr] = Field(
        default_factory=dict,
        description="Action interactions: API field name -> dotted path in the message.",
    )
    event_type: NonEmptyStr | None = Field(
        default=None, description="Action interactions: a fixed eventType (`Viewed`, `Taken`...)."
    )
    impression_separator: str = Field(default="|", min_length=1, description="Splits a string impression.")


class RouteConfig(_Section):
    """One route: its topics, its operation, its target and its mapping, batched and limited on its own."""

    name: str = Field(default="", description="The route's name, in logs (default: its operation).")
    operation: RecordOperation = Field(description="`items`, `users`, `actions` or `action_interactions`.")
    topics: list[NonEmptyStr] = Field(min_length=1, description="Topics of this route's records.")
    dataset_arn: str | None = Field(
        default=None, description="Target of `items`, `users`, `actions`: the dataset's ARN."
    )
    tracking_id: str | None = Field(
        default=None, max_length=256, description="Target of `action_interactions`: the tracking id."
    )
    mapping: RouteMapping = Field(default_factory=RouteMapping, description="How messages become records.")
    max_records: int = Field(default=10, ge=1, le=10, description="Records per call (at most 10).")
    linger_ms: int = Field(
        default=200, ge=0, le=600_000, description="Longest a record waits for more before its call."
    )
    max_in_flight: int = Field(default=8, ge=1, le=1024, description="Most calls of this route at once.")
    max_calls_per_second: float | None = Field(
        default=None,
        gt=0,
        description="This replica's cap on the route's calls/s; null: the operation's documented quota "
        "(PutItems, PutUsers 10/s), none where none is documented (PutActions, PutActionInteractions).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("name") and "operation" in data:
            return {**data, "name": data["operation"]}
        return data

    @field_validator("topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        return split_topics(value)

    @model_validator(mode="after")
    def _target_and_mapping(self) -> RouteConfig:
        catalog = self.operation in CATALOG_OPERATIONS
        if catalog:
            problem = limits.check_dataset_arn("dataset_arn", self.dataset_arn)
            if self.dataset_arn is None:
                problem = f"dataset_arn: is required for operation {self.operation}"
            if problem:
                raise ValueError(problem)
            if self.tracking_id is not None:
                raise ValueError(
                    f"tracking_id: not used by operation {self.operation} (its target is dataset_arn)"
                )
        else:
            if not self.tracking_id:
                raise ValueError(f"tracking_id: is required for operation {self.operation}")
            if self.dataset_arn is not None:
                raise ValueError(
                    f"dataset_arn: not used by operation {self.operation} (its target is tracking_id)"
                )
        foreign = _INTERACTION_KEYS if catalog else _CATALOG_KEYS
        given = sorted(foreign & self.mapping.model_fields_set)
        if given:
            raise ValueError(f"mapping.{given[0]}: not a mapping key of operation {self.operation}")
        return self

    @property
    def target(self) -> str:
        """The datasetArn or tracking id every call of this route names."""
        target = self.dataset_arn if self.operation in CATALOG_OPERATIONS else self.tracking_id
        assert target is not None  # the validator requires it
        return target

    @property
    def calls_per_second(self) -> float | None:
        """The limiter's cap: the configured one, else the operation's documented quota (or none)."""
        if self.max_calls_per_second is not None:
            return self.max_calls_per_second
        return limits.CALLS_PER_SECOND[API_NAMES[self.operation]]
