"""The documents generated from the service catalog (docs/api/, the handbook's tables of services
and stacks): current, what the running services serve, following the catalog with no other edit;
and the handbook's links lead somewhere."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from infrastructure import catalog
from infrastructure.catalog import ServiceSpec
from sophia_infra import api_docs
from tests.conftest import PROJECT
from tests.platform import run_async

HANDBOOK = PROJECT / api_docs.HANDBOOK
API = PROJECT / api_docs.DOCS_DIR


def generated_files(root: Path) -> set[Path]:
    """The files `api_docs.write` owns under `root`: docs/api/* and the handbook."""
    return {path.relative_to(root) for path in (root / api_docs.DOCS_DIR).glob("*")} | {api_docs.HANDBOOK}


def stale(fresh: Path, committed: Path) -> list[str]:
    """How the committed files differ from freshly generated ones, one problem per file."""
    problems = []
    for path in sorted(generated_files(fresh) | generated_files(committed)):
        if not (fresh / path).is_file():
            problems.append(f"{path}: no service it documents is deployed any more")
        elif not (committed / path).is_file():
            problems.append(f"{path}: missing")
        elif (old := (committed / path).read_text()) != (new := (fresh / path).read_text()):
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), str(path), "generated", lineterm="", n=1)
            problems.append("\n".join(list(diff)[:30]))
    return problems


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated files, written into a directory of their own."""
    root = tmp_path_factory.mktemp("docs")
    api_docs.write(PROJECT, root)
    return root


def test_the_api_documents_and_the_handbooks_tables_are_current(fresh: Path):
    problems = stale(fresh, PROJECT)
    assert problems == [], f"stale documents; run `{api_docs.COMMAND}` and commit the result:\n" + "\n".join(problems)


def test_the_currency_check_fails_on_a_stale_changed_or_missing_document(fresh: Path, tmp_path: Path):
    committed = tmp_path / "committed"
    shutil.copytree(fresh, committed)
    assert stale(fresh, committed) == []
    orchestrator = committed / api_docs.DOCS_DIR / "orchestrator.json"
    orchestrator.write_text(orchestrator.read_text().replace('"/api/status"', '"/api/state"'))
    (committed / api_docs.DOCS_DIR / "mcp-gone.tools.json").write_text("{}\n")
    (committed / api_docs.DOCS_DIR / "memory.json").unlink()
    handbook = committed / api_docs.HANDBOOK
    handbook.write_text(handbook.read_text().replace("| `memory` | 8001 |", "| `memory` | 8002 |"))
    problems = stale(fresh, committed)
    assert len(problems) == 4, problems
    assert "docs/api/mcp-gone.tools.json: no service it documents is deployed any more" in problems
    assert "docs/api/memory.json: missing" in problems
    assert any(p.startswith("--- docs/api/orchestrator.json") and '-    "/api/state": {' in p for p in problems), problems
    assert any(p.startswith("--- docs/handbook.md") and "+| `memory` | 8001 |" in p for p in problems), problems


def test_the_output_is_deterministic(fresh: Path):
    for path in (fresh / api_docs.DOCS_DIR).glob("*.json"):
        text = path.read_text()
        assert text == api_docs.dump(json.loads(text)), f"{path.name}: not sorted, two-space JSON"


# The services of the catalog whose OpenAPI document is exported.
FASTAPI_SERVICES = {item.spec.name: item.context for item in api_docs.deployed(PROJECT) if item.kind == "openapi"}


# --- what the running services serve ----------------------------------------------------------


def test_the_catalogs_fastapi_services_are_found():
    assert set(FASTAPI_SERVICES) >= {"orchestrator", "memory"}


@pytest.mark.parametrize("service", sorted(FASTAPI_SERVICES))
def test_each_openapi_document_is_what_the_service_serves_at_openapi_json(service: str):
    # The app in a process of its own (both services are a package named `app`), asked over
    # HTTP through FastAPI's test client, as the worker never does.
    script = "import json\nfrom fastapi.testclient import TestClient\nfrom app.main import app\n" + (
        "print(json.dumps(TestClient(app).get('/openapi.json').json()))"
    )
    served = subprocess.run(
        [sys.executable, "-c", script], cwd=FASTAPI_SERVICES[service], capture_output=True, text=True, check=False
    )
    assert served.returncode == 0, served.stderr
    document = json.loads((API / f"{service}.json").read_text())
    assert json.loads(served.stdout.splitlines()[-1]) == document
    assert document["info"]["title"].startswith("Sophia AI")
    assert {"/health", "/ready"} <= set(document["paths"])


def test_each_tools_document_is_what_the_running_server_lists(mcp_platform):
    async def listed(url: str) -> list[dict]:
        async with Client(url + "/mcp") as client:
            tools = (await client.list_tools()).tools
        return sorted((tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools), key=lambda t: t["name"])

    for name, server in mcp_platform["servers"].items():
        document = json.loads((API / f"{catalog.mcp_name(name)}.tools.json").read_text())
        assert document["server"] == name and document["path"] == "/mcp"
        assert run_async(listed(server.url)) == document["tools"], name


def test_the_orchestrator_document_describes_its_http_api():
    paths = json.loads((API / "orchestrator.json").read_text())["paths"]
    assert set(paths["/api/memory/{key}"]) == {"put", "get", "delete"}
    assert "get" in paths["/api/status"]
    memory = json.loads((API / "memory.json").read_text())["paths"]
    assert set(memory["/l1/{key}"]) == {"put", "get", "delete"}


# --- the catalog drives them ------------------------------------------------------------------

NOTES_APP = '''"""A service added by a test: generated from the template, then listed in the catalog."""
from fastapi import FastAPI

app = FastAPI(title="Sophia AI notes", version="0.1.0")


@app.get("/notes/{key}")
async def note(key: str) -> dict[str, str]:
    return {"key": key}
'''

NOTION = '''from mcp.server import MCPServer

from sophia_mcp.servers import McpService


def create() -> McpService:
    mcp = MCPServer("notion")

    @mcp.tool()
    def search_pages(query: str) -> list[str]:
        """Find pages."""
        return [query]

    async def ready():
        return True, {}

    return McpService(mcp, ready)
'''


def test_a_new_service_and_a_new_mcp_server_are_documented_with_no_other_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = tmp_path / "project"
    for directory in ("services/orchestrator", "services/memory", "mcp-servers", "docs"):
        shutil.copytree(PROJECT / directory, project / directory, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    for path in [*PROJECT.glob("Pulumi*.yaml"), PROJECT / "README.md"]:
        shutil.copy(path, project / path.name)
    # The new service: its sources (as the template would make them) and its catalog entry.
    (project / "services/notes/app").mkdir(parents=True)
    (project / "services/notes/app/__init__.py").write_text("")
    (project / "services/notes/app/main.py").write_text(NOTES_APP)
    (project / "services/notes/pyproject.toml").write_text('[project]\nname = "notes"\nversion = "0.1.0"\n')
    services = catalog.services

    def with_notes(config) -> list[ServiceSpec]:
        return [
            *services(config),
            ServiceSpec("notes", "notes", "notes", 8002, 1, "250m", "512Mi", uses_redis=True, context="services/notes"),
        ]

    monkeypatch.setattr(catalog, "services", with_notes)
    # The new MCP server: its module and one line in a stack file.
    (project / "mcp-servers/sophia_mcp/servers/notion.py").write_text(NOTION)
    dev = project / "Pulumi.sophia-ai-dev.yaml"
    dev.write_text(dev.read_text().replace("    - slack\n", "    - slack\n    - notion\n", 1))

    api_docs.write(project, project)
    api = project / api_docs.DOCS_DIR
    assert json.loads((api / "notes.json").read_text())["paths"].keys() == {"/notes/{key}"}
    tools = json.loads((api / "mcp-notion.tools.json").read_text())["tools"]
    assert [tool["name"] for tool in tools] == ["search_pages"]
    index = (api / "README.md").read_text()
    assert "| `notes` | 8002 | [notes.json](notes.json) |" in index
    assert "| `mcp-notion` | 8080 | [mcp-notion.tools.json](mcp-notion.tools.json) |" in index
    handbook = (project / api_docs.HANDBOOK).read_text()
    assert "| `notes` | 8002 | `sophia-notes` from `services/notes` |" in handbook
    assert "`mcp-slack`, `mcp-notion` (`MEMORY_URL`, `MCP_SERVER_URLS`)" in handbook  # the orchestrator calls it
    readme = (project / "README.md").read_text()
    assert "| `notes` | 8002 | `sophia-notes` from `services/notes` |" in readme and "(docs/api/notes.json)" in readme
    assert "| `mcp-notion` | 8080 |" in readme
    # Nothing else changed: every other document is the committed one.
    for path in API.glob("*.json"):
        assert (api / path.name).read_text() == path.read_text(), path.name


def test_a_python_service_the_exporter_cannot_read_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for path in PROJECT.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "services/odd").mkdir(parents=True)
    (tmp_path / "services/odd/pyproject.toml").write_text("[project]\nname = 'odd'\n")
    services = catalog.services
    monkeypatch.setattr(
        catalog,
        "services",
        lambda config: [*services(config), ServiceSpec("odd", "odd", "odd", 8003, 1, "250m", "512Mi", context="services/odd")],
    )
    with pytest.raises(api_docs.ApiDocsError, match=r"^odd: services/odd is a Python project without app/main.py"):
        api_docs.deployed(tmp_path)


def test_a_service_that_fails_to_import_fails_the_command_with_its_error(tmp_path: Path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app/__init__.py").write_text("")
    (tmp_path / "app/main.py").write_text("raise RuntimeError('settings: PORT must be an integer')\n")
    with pytest.raises(api_docs.ApiDocsError, match=r"(?s)reading broken failed.*PORT must be an integer"):
        api_docs.read("openapi", tmp_path, ["broken"])


# --- the handbook -----------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def broken_links(document: Path) -> list[str]:
    problems = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor:
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.MULTILINE)
            if anchor not in {slug(heading) for heading in headings}:
                problems.append(f"{target}: no such heading")
    return problems


@pytest.mark.parametrize(
    "document", [HANDBOOK, API / "README.md", PROJECT / "README.md"], ids=lambda p: str(p.relative_to(PROJECT))
)
def test_every_link_leads_to_a_file_and_heading_that_exist(document: Path):
    assert broken_links(document) == []


def test_the_link_check_catches_a_missing_file_and_heading(tmp_path: Path):
    (tmp_path / "a.md").write_text("# Title\n\n## The services\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](a.md#the-services) [gone](b.md) [bad](a.md#nothing) [web](https://example.com)\n")
    assert broken_links(page) == ["b.md: no such file", "a.md#nothing: no such heading"]


def test_the_readme_links_the_handbook():
    assert "[the system handbook](docs/handbook.md)" in (PROJECT / "README.md").read_text()


def test_the_capacity_section_only_points_to_the_readme_and_adr_002():
    section = HANDBOOK.read_text().split("## Capacity and traffic\n", 1)[1].split("\n## ", 1)[0]
    assert set(LINK.findall(section)) == {"../README.md", "architecture/decisions/002-k3s-on-lambda-labs.md"}


# --- the configuration keys the documents name ------------------------------------------------

# `sophia-ai:a.b.c` in a document; a key of a map (mcpCredentials.<server>, images.digests.<image>)
# or a list index may follow a key the reference lists.
CONFIG_KEY = re.compile(r"\bsophia-ai:[A-Za-z][A-Za-z0-9]*(?:\.(?:[A-Za-z0-9_-]+|<[a-z-]+>))*")


def unknown_keys(text: str, known: set[str]) -> list[str]:
    found = []
    for key in dict.fromkeys(CONFIG_KEY.findall(text)):
        parts = key.split(".")
        prefixes = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
        # Known as a whole, or below a key whose values are maps or lists (no fields of their own).
        if key not in known and not any(
            prefix in known and not any(k.startswith(prefix + ".") for k in known) for prefix in prefixes
        ):
            found.append(key)
    return found


def documents() -> list[Path]:
    return [PROJECT / "README.md", *sorted((PROJECT / "docs").rglob("*.md")), *sorted((PROJECT / ".github").rglob("*.yml"))]


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_configuration_key_a_document_names_exists(document: Path):
    from stacks import reference

    known = {row[0] for row in reference.rows()}
    assert unknown_keys(document.read_text(), known) == []


def test_the_key_check_finds_a_misnamed_key():
    from stacks import reference

    known = {row[0] for row in reference.rows()}
    text = "set `sophia-ai:k3s.etcdS3.accessKey` and `sophia-ai:redis.backup.s3.secretAccessKey`, `sophia-ai:mcpCredentials.gong`"
    assert unknown_keys(text, known) == ["sophia-ai:k3s.etcdS3.accessKey"]
