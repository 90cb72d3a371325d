"""Configuration: one pydantic schema, read from YAML, every key overridable from the environment.

One module per concern: :mod:`~forwarder.config.schema` (the sections and their validation),
:mod:`~forwarder.config.env` (the ``FORWARDER__SECTION__KEY`` overlay), :mod:`~forwarder.config.load`
(YAML + environment + validation, :class:`ConfigError`), :mod:`~forwarder.config.clients` (librdkafka
properties per client), :mod:`~forwarder.config.redact` (properties safe to log) and
:mod:`~forwarder.config.reference` (docs/configuration.md). Import the public names from here.
"""

from forwarder.config.clients import CONSUMER_ONLY_KEYS, producer_client_properties
from forwarder.config.env import ENV_PREFIX, PASSTHROUGH_PATHS, apply_overrides, env_overrides
from forwarder.config.load import ConfigError, load_config, parse_config
from forwarder.config.redact import SECRET_MARKERS, redact
from forwarder.config.reference import reference_markdown
from forwarder.config.schema import (
    CLASSIC_ONLY_CLIENT_KEYS,
    RENAMED_KEYS,
    RESERVED_CLIENT_KEYS,
    BackpressureConfig,
    BatchingConfig,
    Config,
    DeadLetterConfig,
    KafkaConfig,
    LoggingConfig,
    MappingConfig,
    MappingFields,
    NonEmptyStr,
    ObservabilityConfig,
    PersonalizeConfig,
    RetryConfig,
    ShutdownConfig,
)

__all__ = [
    "CLASSIC_ONLY_CLIENT_KEYS",
    "CONSUMER_ONLY_KEYS",
    "ENV_PREFIX",
    "PASSTHROUGH_PATHS",
    "RENAMED_KEYS",
    "RESERVED_CLIENT_KEYS",
    "SECRET_MARKERS",
    "BackpressureConfig",
    "BatchingConfig",
    "Config",
    "ConfigError",
    "DeadLetterConfig",
    "KafkaConfig",
    "LoggingConfig",
    "MappingConfig",
    "MappingFields",
    "NonEmptyStr",
    "ObservabilityConfig",
    "PersonalizeConfig",
    "RetryConfig",
    "ShutdownConfig",
    "apply_overrides",
    "env_overrides",
    "load_config",
    "parse_config",
    "producer_client_properties",
    "redact",
    "reference_markdown",
]
