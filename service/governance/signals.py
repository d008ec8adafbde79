"""SIGHUP under granian: reload the tables in the workers instead of respawning them.

Granian's main process answers SIGHUP by starting new workers and stopping the old ones. A new
worker loads the tables at start-up and exits when they are invalid, so a bad table set sent
with ``kill -HUP`` would take the whole API down. :func:`forward_sighup` makes the main process
pass the signal on to its workers, where :class:`GovernancePlugin` reloads the tables in place
and keeps the running set when the new one is refused.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

__all__ = ["forward_sighup"]

log = logging.getLogger("usm.governance.signals")


def forward_sighup(server: Any) -> None:
    """Before ``server.serve()``: make SIGHUP to granian's main process reach each worker."""

    def forward(*_: object) -> None:
        for worker in list(getattr(server, "wrks", [])):
            pid = getattr(getattr(worker, "inner", None), "pid", None)
            if pid:
                try:
                    os.kill(pid, signal.SIGHUP)
                except ProcessLookupError:  # a worker that just exited; granian respawns it
                    continue
        log.info("SIGHUP passed on to %d worker(s): tables reload in place", len(server.wrks))

    # granian installs ``self.signal_handler_reload`` for SIGHUP when serve() starts.
    server.signal_handler_reload = forward
