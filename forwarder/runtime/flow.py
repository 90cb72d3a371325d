"""Flow control: whether consumption is paused, from the load and the service's health.

Pure: the caller passes the load (events buffered, in PutEvents calls, or awaiting a dead-letter
acknowledgement) and whether PutEvents is in an outage, at whatever moments it chooses (after every poll,
on every tick); the decision depends on nothing else, so it is unit-tested without a loop or a broker.

The rule, with hysteresis so a replica at the limit does not flap:
- pause when the load reaches ``limit``, the service is in an outage, or the input is (a schema registry
  that does not answer: ``input_outage`` says why);
- resume when there is no outage of either kind and the load is down to half the limit.
While paused, polling goes on (see :meth:`forwarder.runtime.source.Source.consume`), so the group keeps
this member.
"""

from __future__ import annotations

import logging

log = logging.getLogger("forwarder.runtime")


class FlowControl:
    """The paused flag and the rule that moves it."""

    __slots__ = ("limit", "paused")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.paused = False

    def update(self, load: int, outage: bool, input_outage: str | None = None) -> bool:
        """Apply the rule to the current load and health; return whether consumption is paused."""
        limit = self.limit
        if not self.paused:
            if load >= limit or outage or input_outage is not None:
                self.paused = True
                log.info(
                    "pausing consumption (%s)",
                    "PutEvents outage"
                    if outage
                    else f"input outage: {input_outage}"
                    if input_outage is not None
                    else f"{load} events held, limit {limit}",
                )
        elif not outage and input_outage is None and load <= limit // 2:
            self.paused = False
            log.info("resuming consumption (%d events held)", load)
        return self.paused
