"""Record decoders for the operations beside PutEvents: a decoded JSON object becomes a valid record of
one operation, or a :class:`~forwarder.records.common.Problem` naming the field.

One module per operation (:mod:`.items`, :mod:`.users`, :mod:`.actions`, :mod:`.action_interactions`),
sharing :mod:`.common` (the mapping: pick, rename, drop; camelCase; ``properties`` as a JSON string).
They know nothing of Kafka nor of the runtime: the caller hands over the message's value parsed by
:func:`~forwarder.records.common.parse_value` (``None`` for a tombstone, a ``Problem`` for bytes that are
not JSON) and, where the record needs them, a fallback eventId and timestamp.
"""
