"""K3sCluster: a Lambda Labs GPU machine (and optional extra GPU hosts) turned into k3s over SSH."""

from __future__ import annotations

import functools
import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command.remote as remote
import pulumi_random as random
import yaml

SCRIPTS = Path(__file__).parent / "scripts"
INSTALL_SCRIPT = SCRIPTS / "k3s-install.sh"
REMOVE_SCRIPT = SCRIPTS / "k3s-remove.sh"
API_PORT = 6443
ETCD_SNAPSHOT_CRON = "0 */6 * * *"
ETCD_SNAPSHOT_RETENTION = 28


@dataclass
class K3sClusterArgs:
    host: str  # public IP of the server
    node_name: str
    ssh_user: str
    ssh_private_key: pulumi.Input[str]
    version: str  # full release, e.g. v1.33.5+k3s1
    node_labels: Mapping[str, str]
    ssh_port: int = 22
    dns_name: str | None = None
    agents: Sequence[str] = ()
    keep_on_destroy: bool = False
    # The join token (a secret); None generates one.
    token: pulumi.Input[str] | None = None
    api_timeout: str = "20m"


def server_config(args: K3sClusterArgs, token: str) -> str:
    """/etc/rancher/k3s/config.yaml of the server."""
    config = {
        "node-name": args.node_name,
        "tls-san": [args.host, *([args.dns_name] if args.dns_name else [])],
        "node-label": [f"{key}={value}" for key, value in sorted(args.node_labels.items())],
        # The admin kubeconfig is root's alone (the week-0 plan's 644 made it world-readable).
        "write-kubeconfig-mode": "0600",
        "secrets-encryption": True,
        "token": token,
        # Embedded etcd: scheduled snapshots now, more servers later.
        "cluster-init": True,
        "etcd-snapshot-schedule-cron": ETCD_SNAPSHOT_CRON,
        "etcd-snapshot-retention": ETCD_SNAPSHOT_RETENTION,
    }
    return yaml.safe_dump(config, sort_keys=True)


def agent_config(args: K3sClusterArgs, node_name: str, token: str) -> str:
    """/etc/rancher/k3s/config.yaml of an agent."""
    config = {
        "server": f"https://{args.host}:{API_PORT}",
        "node-name": node_name,
        "node-label": [f"{key}={value}" for key, value in sorted(args.node_labels.items())],
        "token": token,
    }
    return yaml.safe_dump(config, sort_keys=True)


def rewrite_kubeconfig(text: str, server: str) -> str:
    """Point every cluster of k3s's kubeconfig (which says 127.0.0.1) at `server`."""
    document = yaml.safe_load(text)
    for cluster in document.get("clusters") or []:
        cluster["cluster"]["server"] = server
    return yaml.safe_dump(document, sort_keys=False)


def install_command(version: str, role: str, node_name: str, script: str) -> str:
    """Every value is shell-quoted; the config (with the token) travels on stdin, never here."""
    env = {"K3S_VERSION": version, "K3S_ROLE": role, "K3S_NODE_NAME": node_name}
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    return f"sudo -n env {assignments} bash {shlex.quote(script)}"


class K3sCluster(pulumi.ComponentResource):
    """Installs a pinned k3s on `host` (and agents on `agents`), waits until the API server and
    the node are ready, and reads the admin kubeconfig back.

    A `pulumi up` with unchanged inputs runs nothing on the hosts; a new config or version
    re-runs the install script, which restarts k3s once. On destroy k3s is uninstalled unless
    `keep_on_destroy`.

    Outputs: `kubeconfig` (secret, server address rewritten to the host), `token` (secret),
    `api_server` (https URL), `node_names`.
    """

    kubeconfig: pulumi.Output[str]
    token: pulumi.Output[str]
    api_server: pulumi.Output[str]
    node_names: list[str]

    def __init__(self, name: str, args: K3sClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:K3sCluster", name, None, opts)
        token: pulumi.Input[str]
        if args.token is None:
            token = random.RandomPassword(
                f"{name}-token", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
            ).result
        else:
            token = args.token
        self.token = pulumi.Output.secret(token)
        home = "/root" if args.ssh_user == "root" else f"/home/{args.ssh_user}"
        self._scripts_dir = f"{home}/.sophia-k3s"

        server = self._host(
            f"{name}-server",
            args,
            args.host,
            role="server",
            node_name=args.node_name,
            config=self.token.apply(lambda t: server_config(args, t)),
        )
        self.node_names = [args.node_name]
        for index, agent in enumerate(args.agents, start=1):
            agent_name = f"{args.node_name}-agent-{index}"
            self.node_names.append(agent_name)
            self._host(
                f"{name}-agent-{index}",
                args,
                agent,
                role="agent",
                node_name=agent_name,
                config=self.token.apply(functools.partial(agent_config, args, agent_name)),
                depends_on=[server],
            )

        self.api_server = pulumi.Output.from_input(f"https://{args.dns_name or args.host}:{API_PORT}")
        read = remote.Command(
            f"{name}-kubeconfig",
            connection=self._connection(args, args.host),
            create="sudo -n cat /etc/rancher/k3s/k3s.yaml",
            # Read again whenever the server was (re)installed or reconfigured.
            triggers=[server.id, server.stdin, server.create],
            logging=remote.Logging.NONE,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[server], additional_secret_outputs=["stdout"]),
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(read.stdout, self.api_server).apply(lambda pair: rewrite_kubeconfig(pair[0], pair[1]))
        )
        self.register_outputs(
            {"kubeconfig": self.kubeconfig, "token": self.token, "api_server": self.api_server, "node_names": self.node_names}
        )

    @staticmethod
    def _connection(args: K3sClusterArgs, host: str) -> remote.ConnectionArgs:
        return remote.ConnectionArgs(
            host=host,
            port=args.ssh_port,
            user=args.ssh_user,
            private_key=pulumi.Output.secret(args.ssh_private_key),
            dial_error_limit=20,
        )

    def _upload(
        self, name: str, script: Path, connection: remote.ConnectionArgs, opts: pulumi.ResourceOptions
    ) -> tuple[remote.CopyToRemote, str]:
        """Copy a script to the host; replaced (re-copied) when its content changes."""
        path = f"{self._scripts_dir}/{script.name}"
        upload = remote.CopyToRemote(
            name,
            connection=connection,
            source=pulumi.FileAsset(str(script)),
            remote_path=path,
            triggers=[hashlib.sha256(script.read_bytes()).hexdigest()],
            opts=opts,
        )
        return upload, path

    def _host(
        self,
        prefix: str,
        args: K3sClusterArgs,
        host: str,
        *,
        role: str,
        node_name: str,
        config: pulumi.Output[str],
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> remote.Command:
        connection = self._connection(args, host)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        upload_install, install_path = self._upload(f"{prefix}-install-script", INSTALL_SCRIPT, connection, child)
        uploads: list[pulumi.Resource] = [upload_install]
        if not args.keep_on_destroy:
            upload_remove, remove_path = self._upload(f"{prefix}-remove-script", REMOVE_SCRIPT, connection, child)
            # Created before the install and destroyed after it: `pulumi destroy` uninstalls k3s
            # here, while a replacement of the install (which has no delete) never does.
            uploads.append(
                remote.Command(
                    f"{prefix}-uninstall-on-destroy",
                    connection=connection,
                    create="true",
                    delete=f"sudo -n bash {shlex.quote(remove_path)}",
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[upload_remove]),
                )
            )
        return remote.Command(
            f"{prefix}-install",
            connection=connection,
            create=install_command(args.version, role, node_name, install_path),
            stdin=config,
            # Re-run when the uploaded script changes.
            triggers=upload_install.triggers,
            # Progress goes to stderr; the config (with the token) is never printed.
            logging=remote.Logging.STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*uploads, *depends_on],
                additional_secret_outputs=["stdin"],
                custom_timeouts=pulumi.CustomTimeouts(create=args.api_timeout, update=args.api_timeout),
            ),
        )
