"""Amazon Personalize's event-ingestion API (``personalize-events``): everything the forwarder knows of it.

One module per concern, so that a new transport or a new operation is one module plus its registration:

- :mod:`~forwarder.personalize.limits`: the service's rules, shared by the decoder and the emulator;
- :mod:`~forwarder.personalize.errors`: the three kinds of failure and how a response maps onto them;
- :mod:`~forwarder.personalize.operations`: what varies between operations (path, body, boto3 method);
- :mod:`~forwarder.personalize.transport`: the :class:`~forwarder.personalize.transport.Transport`
  protocol and the registry behind ``personalize.transport``;
- :mod:`~forwarder.personalize.boto3_transport`, :mod:`~forwarder.personalize.fast_transport`: the two
  transports;
- :mod:`~forwarder.personalize.client`: the boto3 session and client both transports start from;
- :mod:`~forwarder.personalize.signing`: the cached SigV4 signer of the fast transport;
- :mod:`~forwarder.personalize.http`: HTTP/1.1 message parsing (shared with the emulator's wire layer)
  and the fast transport's keep-alive connection pool.

This file imports nothing, so that importing one module (the decoder imports ``limits``) does not pull in
the others.
"""
