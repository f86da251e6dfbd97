"""The API documents in docs/api/ and the handbook's table of services, generated from the service
catalog (`sophia-infra api-docs`, `make api-docs`; tests/test_docs.py fails when they are stale).

Every service any stack file deploys (`infrastructure/catalog.py`, the union over `Pulumi.*.yaml`)
gets one, by what its build context holds:

- a FastAPI service generated from services/templates/python-service (`app/main.py`):
  `<service>.json`, its OpenAPI document (`app.openapi()`, what it serves at /openapi.json);
- an MCP server: `<service>.tools.json`, its tools as `tools/list` answers them. Not an OpenAPI
  document: the servers' FastAPI apps describe only `/health` and `/ready` (the same in every
  server), while their API is one JSON-RPC endpoint, `/mcp`, whose operations are the tools;
- anything else (the dashboard's Node server) is not a Python service and gets none.

Each build context is read in an interpreter of its own (`api_docs_worker.py`): the template's
services are all a package named `app`. Output is deterministic: sorted keys, two-space indents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from infrastructure import catalog
from infrastructure.catalog import ServiceSpec
from policies.production import STACK_ENVIRONMENTS
from sophia_infra import esc
from stacks import loader

DOCS_DIR = Path("docs/api")
HANDBOOK = Path("docs/handbook.md")
README = Path("README.md")
COMMAND = "make api-docs"
WORKER = Path(__file__).with_name("api_docs_worker.py")
WORKER_TIMEOUT_SECONDS = 120


class ApiDocsError(Exception):
    """A service whose API document cannot be made."""


@dataclass(frozen=True)
class Deployed:
    spec: ServiceSpec  # its `calls` the union over the stacks
    context: Path  # the build context, absolute
    kind: str | None  # "openapi", "mcp", or None (not a Python service)

    @property
    def filename(self) -> str | None:
        if self.kind is None:
            return None
        return f"{self.spec.name}.json" if self.kind == "openapi" else f"{self.spec.name}.tools.json"


def kind_of(spec: ServiceSpec, context: Path, project: Path) -> str | None:
    if spec.component == catalog.MCP_COMPONENT:
        return "mcp"
    if (context / "app/main.py").is_file():
        return "openapi"
    if (context / "pyproject.toml").is_file():
        raise ApiDocsError(
            f"{spec.name}: {context.relative_to(project)} is a Python project without app/main.py;"
            " API documents are made for services generated from services/templates/python-service and MCP servers"
        )
    return None


def deployed(project: Path) -> list[Deployed]:
    """Every service the project's stack files deploy, once, with its build context and the union
    of what it calls in each stack: in catalog order, stack files by name."""
    found: dict[str, tuple[ServiceSpec, Path]] = {}
    for path in sorted(project.glob("Pulumi.*.yaml")):
        config = loader.load_stack_file(path).config
        for spec in catalog.services(config):
            context = (project / config.images.source_root / spec.context).resolve()
            first, first_context = found.setdefault(spec.name, (spec, context))
            if first_context != context:
                raise ApiDocsError(f"{spec.name}: built from {first_context} and, in {path.name}, from {context}")
            calls = first.calls + tuple(callee for callee in spec.calls if callee not in first.calls)
            found[spec.name] = (replace(first, calls=calls), context)
    return [Deployed(spec, context, kind_of(spec, context, project)) for spec, context in found.values()]


def read(kind: str, context: Path, names: list[str]) -> dict[str, Any]:
    """The documents of `names` in one build context, from a worker process that sees only that
    context and none of the platform's environment."""
    with tempfile.TemporaryDirectory(prefix="sophia-api-docs-") as scratch:
        out = Path(scratch) / "documents.json"
        path = os.environ.get("PATH", "/usr/bin:/bin")
        env = {"PATH": path, "HOME": scratch, "TMPDIR": scratch, "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            result = subprocess.run(
                [sys.executable, str(WORKER), kind, str(context), str(out), *names],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                timeout=WORKER_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ApiDocsError(f"{context}: reading {', '.join(names)} took over {WORKER_TIMEOUT_SECONDS} s") from None
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise ApiDocsError(f"{context}: reading {', '.join(names)} failed (exit {result.returncode}):\n{tail}")
        documents: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return documents


def dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents(project: Path, services: list[Deployed]) -> dict[str, str]:
    """docs/api's files: name -> text."""
    groups: dict[tuple[str, Path], list[Deployed]] = {}
    for item in services:
        if item.kind is not None:
            groups.setdefault((item.kind, item.context), []).append(item)
    files: dict[str, str] = {}
    # The workers in parallel: each spends its time importing its service's libraries.
    with ThreadPoolExecutor() as pool:
        futures = {key: pool.submit(read, *key, [item.spec.config_name for item in items]) for key, items in groups.items()}
        for key, items in groups.items():
            read_back = futures[key].result()
            for item in items:
                assert item.filename is not None
                files[item.filename] = dump(read_back[item.spec.config_name])
    rows = []
    for item in services:
        source = item.context.relative_to(project)
        if item.kind == "openapi":
            version = json.loads(files[f"{item.spec.name}.json"])["openapi"]
            what = f"OpenAPI {version} of its FastAPI app (`{source}`), as it serves it at `/openapi.json`"
        elif item.kind == "mcp":
            what = f"the tools of MCP server `{item.spec.config_name}` (`{source}`), as `tools/list` returns them at `/mcp`"
        else:
            continue
        rows.append(f"| `{item.spec.name}` | {item.spec.port} | [{item.filename}]({item.filename}) | {what} |")
    not_python = ", ".join(
        f"`{item.spec.name}` (`{item.context.relative_to(project)}`)" for item in services if item.kind is None
    )
    files["README.md"] = "\n".join(
        [
            "# API documents",
            "",
            f"Generated by `{COMMAND}` (`sophia-infra api-docs`, `sophia_infra/api_docs.py`) for every service",
            "the stack files deploy (`infrastructure/catalog.py`); `make test` fails when they are stale. Do not",
            "edit them by hand.",
            "",
            "| service | port | document | what it describes |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            "The MCP servers get no OpenAPI document: their FastAPI apps describe only `/health` and `/ready`,",
            "the same in every server, while their API is one JSON-RPC endpoint, `/mcp` (MCP over streamable",
            "HTTP), whose operations are the tools listed here.",
            *([f"Not Python services, so not documented here: {not_python}."] if not_python else []),
            "",
        ]
    )
    return files


def services_table(project: Path, services: list[Deployed], documents_at: str = "api/") -> str:
    """The table of services (the handbook's and the README's): each service, its port and image,
    whom it calls (and the variables that tell it where), who calls it, what it uses and who may
    reach it; its API document linked from `documents_at` (relative to the file holding it)."""
    specs = [item.spec for item in services]
    callers: dict[str, list[str]] = {}
    for spec in specs:
        for callee in spec.calls:
            callers.setdefault(callee, []).append(spec.name)

    def names(values: list[str] | tuple[str, ...]) -> str:
        return ", ".join(f"`{value}`" for value in values)

    def yes(flag: bool) -> str:
        return "yes" if flag else ""

    rows = [
        "| service | port | image, built from | calls (the variables that say where) | called by | Redis | Snowflake"
        " | from the ingress | to external APIs (443) | API document |",
        "| --- | ---: | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for item in services:
        spec = item.spec
        built = f"`{spec.image}` from `{item.context.relative_to(project)}`"
        if spec.dockerfile != "Dockerfile" or spec.build_args:
            details = [f"`{spec.dockerfile}`", *(f"`{key}={value}`" for key, value in sorted(spec.build_args.items()))]
            built += f" ({', '.join(details)})"
        variables = catalog.callee_env(spec, specs, "NAMESPACE")
        calls = f"{names(spec.calls)} ({names(list(variables))})" if spec.calls else ""
        document = f"[{item.filename}]({documents_at}{item.filename})" if item.filename else ""
        rows.append(
            f"| `{spec.name}` | {spec.port} | {built} | {calls} | {names(callers.get(spec.name, []))}"
            f" | {yes(spec.uses_redis)} | {yes(spec.uses_snowflake)} | {yes(spec.public)} | {yes(spec.external_https)}"
            f" | {document} |"
        )
    return "\n".join(rows) + "\n"


def stacks_table(project: Path) -> str:
    """The handbook's table of stacks: where each runs and what it runs, from its stack file; the
    project's stacks in their order (dev, staging, production, CI), then any other."""
    rows = [
        "| stack | environment | namespace | cluster | secrets from | replicas (orchestrator, memory, each MCP server,"
        " frontend) | CPU, memory per container | features on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = list(STACK_ENVIRONMENTS)
    stacks = sorted(
        (path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in project.glob("Pulumi.*.yaml")),
        key=lambda stack: (order.index(stack) if stack in order else len(order), stack),
    )
    for stack in stacks:
        path = loader.stack_file(project, stack)
        config = loader.load_stack_file(path).config
        if config.cluster_mode == "provision":
            cluster = f"its own: k3s installed over SSH on `{config.lambda_ip}` (`lambdaLabs:ip`)"
        elif config.cluster_mode == "stackReference":
            cluster = f"`{config.cluster_stack}`'s, through its `kubeconfig` output (`sophia-ai:clusterStack`)"
        elif config.kubeconfig_secret is not None:
            cluster = "the one of `kubernetes:kubeconfig` (contents, a secret)"
        else:
            cluster = f"the one of `kubernetes:kubeconfig`, `{config.kubeconfig}`"
        environments = esc.imports(path)
        secrets = ", ".join(f"ESC `{name}`" for name in environments) if environments else "its stack file (no ESC import)"
        r = config.replicas
        features = [name for name, on in config.features.model_dump().items() if on]
        rows.append(
            f"| `{stack}` | {config.environment} | `{config.namespace}` | {cluster} | {secrets}"
            f" | {r.orchestrator}, {r.memory}, {r.mcp_servers}, {r.frontend} | {config.resources.cpu}, {config.resources.memory}"
            f" | {', '.join(features) or 'none'} |"
        )
    return "\n".join(rows) + "\n"


def with_section(text: str, name: str, table: str, where: Path = HANDBOOK) -> str:
    """`text` (of the file `where`) with its `name` section replaced by `table`."""
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise ApiDocsError(f"{where}: needs one {start.strip()} ... {end} section for the table of {name}")
    head, rest = text.split(start, 1)
    return head + start + table + end + rest.split(end, 1)[1]


def generate(project: Path) -> dict[Path, str]:
    """Every generated file, by its path in the project: docs/api/*, the handbook with its tables
    of services and stacks, and the README with its table of services."""
    services = deployed(project)
    files = {DOCS_DIR / name: text for name, text in documents(project, services).items()}
    handbook = (project / HANDBOOK).read_text(encoding="utf-8")
    handbook = with_section(handbook, "services", services_table(project, services))
    files[HANDBOOK] = with_section(handbook, "stacks", stacks_table(project))
    readme = (project / README).read_text(encoding="utf-8")
    files[README] = with_section(readme, "services", services_table(project, services, "docs/api/"), README)
    return files


def write(project: Path, root: Path) -> list[Path]:
    """Regenerate the files under `root` (the project, or a copy to compare with): write each one
    and delete the JSON files of docs/api that belong to no deployed service any more. Returns
    the paths written."""
    files = generate(project)
    (root / DOCS_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (root / DOCS_DIR).glob("*.json"):
        if stale.relative_to(root) not in files:
            stale.unlink()
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return sorted(files)
