"""Which hosts are this machine's own (the loopback names, and the one check of a host or address),
and where on its host the local emulator serves each Azure ML endpoint.

The app binds to loopback unless told otherwise, plain http is allowed only to a local emulator,
and the emulator's control routes answer only local callers; all of them ask here.
"""

from __future__ import annotations

import ipaddress

#: The loopback host names written out (an address anywhere on loopback counts too, via is_loopback).
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_address(address: str) -> bool:
    """An IP address on loopback (127.0.0.0/8, ::1); False for names and anything unparsable."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """A host (a name or an address) that reaches only this machine."""
    return host in LOOPBACK_NAMES or is_loopback_address(host)


def emulator_endpoint_path(model_id: str) -> str:
    """Where the local emulator serves a model that lives on its own Azure ML endpoint.

    On Azure each such endpoint has a host of its own with ``/score``; one emulator serves them all
    on one host, so each gets a path of its own (and ``/score`` is the first one's, as on Azure).
    """
    return f"/endpoints/{model_id}/score"
