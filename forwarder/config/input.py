"""The ``input`` section: which format each topic's messages are in, and the schema registry to read them.

Its own module for now; it belongs with the rest of the schema in the configuration package.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FormatName = Literal["json", "avro", "protobuf", "json_schema"]
REGISTRY_FORMATS = frozenset({"avro", "protobuf", "json_schema"})


class SchemaRegistryConfig(BaseModel):
    """A Confluent-compatible schema registry, with the settings confluent-kafka's SchemaRegistryClient takes.

    Keys may be written as the client spells them (``basic.auth.user.info``) or with underscores.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: Annotated[str, Field(min_length=1)] = Field(
        description="Base URL(s), comma-separated: Confluent `https://psrc-….confluent.cloud`, Apicurio "
        "`http://host:8080/apis/ccompat/v7`, Karapace or Redpanda `http://host:8081`."
    )
    basic_auth_user_info: str | None = Field(
        default=None,
        alias="basic.auth.user.info",
        description="`key:secret` for HTTP basic auth (Confluent Cloud's API key); set it from the environment.",
    )
    ssl_ca_location: str | None = Field(
        default=None, alias="ssl.ca.location", description="CA bundle that signs the registry's certificate."
    )
    ssl_certificate_location: str | None = Field(
        default=None, alias="ssl.certificate.location", description="Client certificate (mutual TLS)."
    )
    ssl_key_location: str | None = Field(
        default=None, alias="ssl.key.location", description="Client certificate's private key."
    )
    ssl_key_password: str | None = Field(
        default=None, alias="ssl.key.password", description="Password of the client key, if any."
    )
    timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds per registry request (the client's own default waits forever); a request "
        "that times out makes the registry unavailable, not the message bad.",
    )
    max_retries: int = Field(
        default=2, ge=0, alias="max.retries", description="The client's retries of a failed request."
    )
    cache_capacity: int = Field(
        default=1000, ge=1, alias="cache.capacity", description="Schemas kept by the client's cache."
    )

    def client_conf(self) -> dict[str, Any]:
        """The ``SchemaRegistryClient`` configuration: set keys only, in the client's own spelling."""
        conf: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is not None:
                conf[info.alias or name] = value
        return conf


class InputConfig(BaseModel):
    """What the messages are: plain JSON, or records read through a schema registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: FormatName | dict[str, FormatName] = Field(
        default="json",
        description="`json`, `avro`, `protobuf` or `json_schema` for every topic, or a map topic → format "
        "(topics not in the map are `json`).",
    )
    schema_registry: SchemaRegistryConfig | None = Field(
        default=None,
        description="The registry, required by a format other than `json`: `url`, `basic.auth.user.info`, "
        "`ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`, `ssl.key.password`, `timeout` "
        "(10 s), `max.retries` (2), `cache.capacity` (1000); see docs/inputs.md.",
    )

    def format_of(self, topic: str) -> FormatName:
        """The format of one topic's messages."""
        if isinstance(self.format, dict):
            return self.format.get(topic, "json")
        return self.format

    @model_validator(mode="after")
    def _registry_when_needed(self) -> InputConfig:
        used = set(self.format.values()) if isinstance(self.format, dict) else {self.format}
        if used & REGISTRY_FORMATS and self.schema_registry is None:
            raise ValueError(f"format {', '.join(sorted(used & REGISTRY_FORMATS))} needs schema_registry.url")
        return self
