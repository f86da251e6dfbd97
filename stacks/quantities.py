"""Kubernetes resource quantities, hosts and names: parsing and validation helpers."""

from __future__ import annotations

import ipaddress
import math
import re
from decimal import Decimal, InvalidOperation

# The grammar of k8s.io/apimachinery resource.Quantity: a signed decimal number and an
# optional binary (Ki..Ei), decimal (n, u, m, k, M..E) or exponent (e3) suffix.
_QUANTITY = re.compile(r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
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
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_quantity(text: str) -> Decimal:
    """Return the value of a Kubernetes quantity (`500m` -> 0.5, `1Gi` -> 1073741824)."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"must be a Kubernetes quantity such as 500m, 2, 512Mi or 4Gi, got {text!r}")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"must be a Kubernetes quantity, got {text!r}") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def format_quantity(value: Decimal, unit: str) -> str:
    """Format `value` in `unit` (`m` for millicores, `Mi` for mebibytes), rounded up."""
    scale = _BINARY.get(unit) or _DECIMAL[unit]
    return f"{math.ceil(value / scale)}{unit}"


def is_dns_name(text: str) -> bool:
    """An RFC 1123 host name: dot-separated lower-case labels, at most 253 characters."""
    return len(text) <= 253 and all(_DNS_LABEL.match(label) for label in text.split("."))


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host(text: str) -> bool:
    return is_ip(text) or (is_dns_name(text) and not text.replace(".", "").isdigit())
