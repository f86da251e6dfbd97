"""Kubernetes resource quantities, hosts and names: parsing and validation helpers.

Every pattern here matches the whole text, in ASCII only: `fullmatch` (a `$` also matches before
a trailing newline) and explicit classes (`\\d` and `\\w` also match other scripts' digits and
letters).
"""

from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal

# The grammar of k8s.io/apimachinery resource.Quantity: a signed decimal number and an optional
# binary (Ki..Ei), decimal (n, u, m, k, M..E) or exponent (e3) suffix. Bounded digit counts and
# no nested repetition: matching takes time linear in the (already bounded) length.
MAX_QUANTITY_LENGTH = 32
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]{0,18})(?:\.(?P<frac>[0-9]{0,9}))?(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,2})?",
    re.ASCII,
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)


def parse_quantity(text: str) -> Decimal:
    """Return the value of a Kubernetes quantity (`500m` -> 0.5, `1Gi` -> 1073741824)."""
    match = _QUANTITY.fullmatch(text) if len(text) <= MAX_QUANTITY_LENGTH else None
    if not match or not (match["int"] or match["frac"]):
        raise ValueError("must be a Kubernetes quantity such as 500m, 2, 512Mi or 4Gi")
    number = Decimal(f"{match['sign']}{match['int'] or '0'}.{match['frac'] or '0'}")
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number.scaleb(int(suffix[1:]))


def format_quantity(value: Decimal, unit: str) -> str:
    """Format `value` in `unit` (`m` for millicores, `Mi` for mebibytes), rounded up."""
    scale = _BINARY.get(unit) or _DECIMAL[unit]
    return f"{math.ceil(value / scale)}{unit}"


def is_dns_name(text: str) -> bool:
    """An RFC 1123 host name: dot-separated lower-case labels, at most 253 characters."""
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in text.split("."))


def is_dns_label(text: str) -> bool:
    """An RFC 1123 label: what Kubernetes accepts as most object names (at most 63 characters)."""
    return _DNS_LABEL.fullmatch(text) is not None


def ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `text` spells, or None. No IPv6 zone (`fe80::1%eth0`): a zone is local to one
    host's interfaces and its text would reach config files and URLs unchecked."""
    if not text.isascii() or "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_address_problem(text: str) -> str | None:
    """Why `text` cannot be the address of a remote host (the k3s server or an agent), or None."""
    address = ip_address(text)
    if address is None:
        return "must be an IPv4 or IPv6 address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return "must be the IPv4 address itself, not IPv4-mapped in IPv6"
    for unusable, what in (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_multicast, "a multicast address"),
        (address.is_link_local, "a link-local address"),
        (address.is_reserved, "a reserved address"),
    ):
        if unusable:
            return f"must be a host's unicast address, not {what}"
    return None


def is_host_name(text: str) -> bool:
    """A DNS name that names a remote host: not all digits (that is a malformed address) and not
    `localhost` (RFC 6761: always this machine)."""
    return is_dns_name(text) and not text.replace(".", "").isdigit() and text != "localhost" and not text.endswith(".localhost")
