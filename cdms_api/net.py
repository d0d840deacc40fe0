"""Addresses: what counts as this machine."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address (IPv4-mapped IPv6 and zone ids included) is this
    machine's loopback."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address((host or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
