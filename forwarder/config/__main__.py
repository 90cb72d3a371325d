"""``python -m forwarder.config``: print the configuration reference (docs/configuration.md)."""

from forwarder.config.reference import reference_markdown

print(reference_markdown(), end="")
