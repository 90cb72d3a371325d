"""forwarder: deliver user-interaction events from Kafka to Amazon Personalize PutEvents.

The flow, one module per stage: consume → decode → batch → send → dead_letter → offsets (commit),
wired together in ``runtime``; ``outcome`` names what became of a message; ``config`` holds the schema, ``limits`` the service's rules, ``emulator``
a local stand-in for the service.
"""

# The one place the version is written. The distribution's metadata (pyproject.toml reads it without importing),
# `forwarder --version`, the daemon's first log line, the forwarder_build_info metric and the image's labels
# (`make image`) all take it from here. Each release's changes are in CHANGELOG.md.
__version__ = "0.1.0"
