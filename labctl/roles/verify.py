"""Read-back checks for the measuring roles (issue 12): a safety-critical or
run-critical write is confirmed by a query; a disagreement is logged as
``UNVERIFIED: <role> <what>; check the instrument`` and raises, so the run
fails safe (the station's shutdown still runs)."""
from __future__ import annotations

import logging
import math

from labctl.errors import InstrumentError

log = logging.getLogger("labctl.roles")


def unverified(role, what: str, detail: str = "") -> InstrumentError:
    """Log the UNVERIFIED line and return the error to raise."""
    msg = f"UNVERIFIED: {role.name} {what}; check the instrument"
    if detail:
        msg += f" ({detail})"
    log.critical(msg)
    return InstrumentError(msg, role=role.name, address=role.address, last_command=role.last_command)


def expect(role, what: str, got, wanted, tol: float | None = None) -> None:
    """Raise UNVERIFIED unless ``got`` equals ``wanted`` (within ``tol`` for numbers)."""
    ok = False
    try:
        if tol is not None:
            ok = math.isfinite(float(got)) and abs(float(got) - float(wanted)) <= tol
        else:
            ok = got == wanted
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise unverified(role, what, f"sent {wanted!r}, read back {got!r}")


def no_errors(role, errors, when: str) -> None:
    """Raise UNVERIFIED when the instrument's error queue held anything after ``when``."""
    errors = list(errors or [])
    if errors:
        raise unverified(role, f"configuration ({when})",
                         "instrument reported: " + "; ".join(str(e) for e in errors[:5]))
