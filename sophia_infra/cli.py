"""`sophia-infra`: check and render the stacks offline, with no credentials and no Pulumi CLI.

Exit codes: 0 valid, 1 invalid configuration or manifests, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from policies.production import STACK_ENVIRONMENTS
from stacks import loader

EXIT_INVALID = 1
EXIT_USAGE = 2


class UsageError(Exception):
    pass


def _project_dir() -> Path:
    """The nearest directory (from the current one up) that holds Pulumi.yaml."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    raise UsageError("no Pulumi.yaml in this directory or above it; run from the project")


def _source(args: argparse.Namespace) -> tuple[str, Path]:
    """The stack name and its stack file: STACK reads the project's Pulumi.STACK.yaml; --config-file
    reads another file, held to the rules of STACK, or of the stack its name says
    (Pulumi.<stack>.yaml; a file named for another of the project's stacks is refused). The
    stack's name decides its environment, so one is always known."""
    if args.config_file is None:
        if args.stack is None:
            raise UsageError("give STACK, or --config-file PATH (with STACK unless PATH is named Pulumi.<stack>.yaml)")
        stack, path = args.stack, loader.stack_file(_project_dir(), args.stack)
    else:
        path = Path(args.config_file)
        named = loader.stack_of_file(path.name)
        if args.stack and named in STACK_ENVIRONMENTS and named != args.stack:
            raise UsageError(f"{path}: named for {named}, checked as {args.stack}: check it as {named}, or rename it")
        stack = args.stack or named
        if stack is None:
            raise UsageError(
                f"{path}: which stack is this file for? Name the stack too: check STACK --config-file {path}"
                f" ({', '.join(STACK_ENVIRONMENTS)})"
            )
    if stack not in STACK_ENVIRONMENTS:
        raise UsageError(f"{stack}: not a stack of this project ({', '.join(STACK_ENVIRONMENTS)})")
    if not path.is_file():
        raise UsageError(f"{path}: no such stack file")
    return stack, path


def _load(stack: str, path: Path, esc: bool = False) -> loader.LoadedConfig:
    raw = loader.read_stack_file(path, stack)
    if esc:
        from sophia_infra import esc as esc_environments

        raw = esc_environments.resolve(path, raw)
    loaded = loader.validate(raw)
    from infrastructure import capacity  # sizes the stack from the service catalog

    # The stacks sharing its cluster are read from the stack files beside it.
    capacity.check(stack, loaded.config, path.parent)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    for key in loaded.missing_secrets:
        print(
            f"note: {path.name}: {key}: secret not in the file; a placeholder is used offline, `pulumi up` requires it",
            file=sys.stderr,
        )
    return loaded


def cmd_check(args: argparse.Namespace) -> int:
    stack, path = _source(args)
    loaded = _load(stack, path, esc=args.esc)
    if args.require_secrets and loaded.missing_secrets:
        for key in loaded.missing_secrets:
            print(f"{path.name}: {key}: a secret is required here", file=sys.stderr)
        return EXIT_INVALID
    config = loaded.config
    print(f"{path.name}: valid as {stack} ({config.environment}, namespace {config.namespace}, cluster: {config.cluster_mode})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from sophia_infra import render  # imports the Pulumi SDKs: only when rendering

    stack, path = _source(args)
    loaded = _load(stack, path)
    plan = render.plan(stack, loaded)
    problems = render.validate(plan)
    if problems:
        for line in problems:
            print(f"{stack}: invalid manifest: {line}", file=sys.stderr)
        return EXIT_INVALID
    root = render.write(plan, Path(args.out))
    print(
        f"{stack}: {len(plan.recording.resources)} resources, {len(plan.manifests)} manifests"
        f" valid for Kubernetes {plan.kubernetes_version} -> {root}"
    )
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from sophia_infra.build_matrix import MatrixError, entries

    project = _project_dir()
    paths = [loader.stack_file(project, stack) for stack in args.stacks] or sorted(project.glob("Pulumi.*.yaml"))
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such stack file")
    # Secrets do not matter to the images: no notes about them here.
    configs = {path.name[len("Pulumi.") : -len(".yaml")]: loader.load_stack_file(path).config for path in paths}
    try:
        images = entries(configs)
    except MatrixError as exc:
        print(f"sophia-infra: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps({"include": images}, separators=(",", ":")))
    else:
        for image in images:
            print(f"{image['repository']}  {image['dockerfile']}  {image['build-args'].replace(chr(10), ' ')}".rstrip())
    return 0


def cmd_api_docs(args: argparse.Namespace) -> int:
    from sophia_infra import api_docs

    project = _project_dir()
    try:
        written = api_docs.write(project, project)
    except api_docs.ApiDocsError as exc:
        print(f"sophia-infra: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for path in written:
        print(path)
    return 0


REFERENCE_START = "<!-- reference:start -->\n"
REFERENCE_END = "<!-- reference:end -->"


def cmd_reference(args: argparse.Namespace) -> int:
    from stacks.reference import markdown

    if args.update is None:
        print(markdown(), end="")
        return 0
    path = Path(args.update)
    text = path.read_text(encoding="utf-8")
    if REFERENCE_START not in text or REFERENCE_END not in text:
        raise UsageError(f"{path}: no {REFERENCE_START.strip()} ... {REFERENCE_END} section to update")
    head, rest = text.split(REFERENCE_START, 1)
    path.write_text(head + REFERENCE_START + markdown() + REFERENCE_END + rest.split(REFERENCE_END, 1)[1], encoding="utf-8")
    print(f"{path}: configuration reference updated")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sophia-infra", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)

    def with_source(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "stack",
            nargs="?",
            metavar="STACK",
            help=f"stack name, one of {', '.join(STACK_ENVIRONMENTS)} (reads Pulumi.STACK.yaml)",
        )
        sub.add_argument(
            "--config-file", metavar="PATH", help="a stack file to read instead, held to STACK's rules (or those its name says)"
        )

    check = commands.add_parser("check", help="validate a stack's configuration")
    with_source(check)
    check.add_argument("--require-secrets", action="store_true", help="fail when a required secret is not in the file")
    check.add_argument(
        "--esc",
        action="store_true",
        help="add the Pulumi ESC environments the file imports (pulumi env get, secrets redacted; needs the Pulumi CLI)",
    )
    check.set_defaults(run=cmd_check)

    render = commands.add_parser("render", help="render a stack offline under Pulumi's mock runtime")
    with_source(render)
    render.add_argument("--out", required=True, metavar="DIR", help="output directory (DIR/STACK/...)")
    render.set_defaults(run=cmd_render)

    catalog = commands.add_parser("catalog", help="the images the stacks deploy, as CI's build matrix")
    catalog.add_argument("stacks", nargs="*", metavar="STACK", help="stacks to include (default: every Pulumi.*.yaml)")
    catalog.add_argument("--json", action="store_true", help='print {"include": [...]} for a GitHub Actions matrix')
    catalog.set_defaults(run=cmd_catalog)

    api = commands.add_parser(
        "api-docs",
        help="regenerate docs/api/ (each service's OpenAPI document, each MCP server's tools) and the handbook's tables",
    )
    api.set_defaults(run=cmd_api_docs)

    reference = commands.add_parser("reference", help="print the configuration reference (Markdown)")
    reference.add_argument("--update", metavar="FILE", help="rewrite the reference section of FILE (the README) instead")
    reference.set_defaults(run=cmd_reference)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"sophia-infra: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except loader.ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
