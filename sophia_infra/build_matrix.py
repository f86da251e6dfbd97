"""The images to build, from the service catalog and the stack files: the CI build matrix.

One entry per image repository that any of the given stacks deploys, so adding a service to
the catalog or an MCP server to a stack file changes the matrix and no workflow.
"""

from __future__ import annotations

import posixpath

from infrastructure import catalog
from stacks.model import StackConfig


class MatrixError(Exception):
    """Two stacks build the same image differently."""


def registry_host(registry: str) -> str:
    """The host to log in to for `registry` (`ghcr.io/org` -> `ghcr.io`; a bare Docker Hub
    namespace such as `scoobyjava15` -> `docker.io`), as Docker parses image references."""
    first = registry.split("/", 1)[0]
    return first if "." in first or ":" in first or first == "localhost" else "docker.io"


def entries(configs: dict[str, StackConfig]) -> list[dict[str, str]]:
    """The union of the images the stacks (name -> configuration) deploy, one entry per
    repository, paths relative to the project root; sorted by repository."""
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for stack, config in configs.items():
        root = config.images.source_root
        for spec in catalog.services(config):
            context = posixpath.normpath(posixpath.join(root, spec.context))
            entry = {
                "image": spec.image,
                "repository": f"{config.images.registry}/{spec.image}",
                "registry": registry_host(config.images.registry),
                "context": context,
                "dockerfile": posixpath.normpath(posixpath.join(context, spec.dockerfile)),
                # docker/build-push-action's `build-args`: one KEY=VALUE per line.
                "build-args": "\n".join(f"{key}={value}" for key, value in sorted(spec.build_args.items())),
            }
            first, seen = found.setdefault(entry["repository"], (stack, entry))
            if seen != entry:
                raise MatrixError(
                    f"{entry['repository']}: {first} and {stack} build it differently"
                    f" ({seen['dockerfile']} {seen['build-args']!r} vs {entry['dockerfile']} {entry['build-args']!r})"
                )
    return [entry for _, (_, entry) in sorted(found.items())]
