"""The production rules, in one place: the configuration model (`stacks/`) refuses what breaks
them and the policy pack (`rules.py`) reports what breaks them.

Standard library only. The pack imports this module as `production` from its own directory in
its own virtualenv (pulumi-policy only); the program imports it as `policies.production`.
"""

from __future__ import annotations

import re

PRODUCTION_STACK = "sophia-ai-production"
# The stack's name decides its environment, whatever its configuration says.
# `sophia-ai-ci` is the throwaway stack every pull request deploys to a k3s in its runner.
STACK_ENVIRONMENTS = {
    "sophia-ai-dev": "dev",
    "sophia-ai-staging": "staging",
    PRODUCTION_STACK: "production",
    "sophia-ai-ci": "dev",
}

# Tags that name a moving target: a rollout with them is not reproducible.
MUTABLE_TAGS = frozenset({"latest", "main", "master", "stable", "edge", "nightly", "dev"})
# Production Deployments run at least this many replicas, each with a PodDisruptionBudget.
MIN_PRODUCTION_REPLICAS = 2
# Image prefixes production may pull from (the policy's `allowedRegistries` default).
ALLOWED_REGISTRIES = ("scoobyjava15/", "redis:", "otel/opentelemetry-collector:", "nvcr.io/nvidia/")
# A full k3s release, never a channel.
K3S_VERSION = r"v1\.[0-9]{1,3}\.[0-9]{1,3}\+k3s[0-9]{1,3}"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")


def image_tag(image: str) -> str | None:
    """The tag of an image reference (`redis:7.4.2-alpine` -> `7.4.2-alpine`), None without one."""
    name = _DIGEST.sub("", image)
    repository, _, tag = name.rpartition(":")
    return tag if repository and "/" not in tag else None


def is_mutable_image(image: str) -> bool:
    """True unless the image is pinned: by digest, or by a tag that is not a moving target."""
    if _DIGEST.search(image):
        return False
    tag = image_tag(image)
    return tag is None or tag.lower() in MUTABLE_TAGS


def is_allowed_registry(image: str, registries: tuple[str, ...] | list[str] = ALLOWED_REGISTRIES) -> bool:
    return any(image.startswith(prefix) for prefix in registries)
