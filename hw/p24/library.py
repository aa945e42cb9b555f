"""The one import of the ``science_mode_4`` library (the optional extra ``sciencemode``).

The library configures its own logger when imported: level INFO, a handler on stderr,
a line for its version at import and one for every command sent (``Mid level update``,
``Low level send channel config``): on a live trial that is a write to the terminal from
the I/O thread for every pulse. Its warnings and errors are kept; the chatter is dropped
before it is formatted. Without the library, importing this raises ``ImportError``
saying how to install the extra.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("science_mode_4")
# A filter drops the INFO line the import itself logs; the level (set after the import,
# which sets its own) keeps the later ones from being built at all.
_log.addFilter(lambda record: record.levelno >= logging.WARNING)
try:
    import science_mode_4 as sm
except ImportError as err:  # pragma: no cover - the extra is part of dev
    raise ImportError(
        "the P24 driver needs the science_mode_4 library: pip install 'fes-timing[sciencemode]'"
    ) from err
_log.setLevel(logging.WARNING)

__all__ = ["sm"]
