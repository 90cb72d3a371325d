"""forwarder: deliver user-interaction events from Kafka to Amazon Personalize PutEvents.

The flow, one module per stage: consume → decode → batch → send → dead_letter → offsets (commit),
wired together in ``runtime``; ``outcome`` names what became of a message; ``config`` holds the schema, ``limits`` the service's rules, ``emulator``
a local stand-in for the service.
"""

__version__ = "0.1.0"
