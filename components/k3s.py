"""K3sCluster: a Lambda Labs GPU machine (and optional extra GPU hosts) turned into k3s over SSH."""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command.remote as remote
import pulumi_random as random
import yaml

SCRIPTS = Path(__file__).parent / "scripts"
INSTALL_SCRIPT = SCRIPTS / "k3s-install.sh"
REMOVE_SCRIPT = SCRIPTS / "k3s-remove.sh"
TOKEN_SCRIPT = SCRIPTS / "k3s-pulumi-token.sh"
API_PORT = 6443
ETCD_SNAPSHOT_CRON = "0 */6 * * *"
ETCD_SNAPSHOT_RETENTION = 28
# Flannel between hosts crosses the public internet: encrypt it. The backend is chosen when the
# cluster is created; switching a running cluster means rebooting every node (k3s docs,
# networking/basic-network-options.md), so it is WireGuard from the first node on.
FLANNEL_BACKEND = "wireguard-native"
# The secure ("full") join token: K10<sha256 of the server CA>::<user>:<password>. The hash lets
# a joining agent check the server's CA before it sends its credentials; agents authenticate as
# `node` with the agent token (k3s-io/k3s pkg/clientaccess/token.go, docs/cli/token.md).
_CA_HASH = re.compile(r"^K10[0-9a-f]{64}\Z")


@dataclass
class EtcdS3Args:
    """Where k3s copies every etcd snapshot (k3s `etcd-s3-*`); the keys are secrets."""

    bucket: str
    access_key: pulumi.Input[str]
    secret_key: pulumi.Input[str]
    endpoint: str = "s3.amazonaws.com"
    region: str = "us-east-1"
    folder: str | None = None
    # Plain HTTP (k3s `etcd-s3-insecure`), e.g. a MinIO on a private network.
    insecure: bool = False


@dataclass
class K3sClusterArgs:
    host: str  # public IP of the server
    node_name: str
    ssh_user: str
    ssh_private_key: pulumi.Input[str]
    version: str  # full release, e.g. v1.33.5+k3s1
    node_labels: Mapping[str, str]
    ssh_port: int = 22
    # OpenSSH public host keys (`ssh-ed25519 AAAA...`): the server's, and each agent's by address.
    # None accepts any key (pulumi-command's default); production requires them.
    host_key: str | None = None
    agent_host_keys: Mapping[str, str] = field(default_factory=dict)
    dns_name: str | None = None
    agents: Sequence[str] = ()
    keep_on_destroy: bool = False
    # The join tokens (secrets); None generates them. Agents get only the agent token.
    token: pulumi.Input[str] | None = None
    agent_token: pulumi.Input[str] | None = None
    snapshot_dir: str | None = None
    etcd_s3: EtcdS3Args | None = None
    # Where k3s's local-path provisioner creates volumes (k3s `default-local-storage-path`): outside
    # /var/lib/rancher/k3s, so a retained volume outlives a k3s uninstall. None keeps k3s's default.
    local_storage_path: str | None = None
    # What every node's kubelet keeps out of its allocatable for k3s and the OS (`system-reserved`,
    # e.g. "cpu=2,memory=4Gi"), so that pods never count on it. None reserves nothing.
    system_reserved: str | None = None


@dataclass(frozen=True)
class ServerSecrets:
    token: str
    agent_token: str
    s3_access_key: str | None = None
    s3_secret_key: str | None = None


def _digest(script: Path) -> str:
    return hashlib.sha256(script.read_bytes()).hexdigest()


def server_config(args: K3sClusterArgs, secrets: ServerSecrets) -> str:
    """/etc/rancher/k3s/config.yaml of the server."""
    config: dict = {
        "node-name": args.node_name,
        "tls-san": [args.host, *([args.dns_name] if args.dns_name else [])],
        "node-label": [f"{key}={value}" for key, value in sorted(args.node_labels.items())],
        # The admin kubeconfig is root's alone (the week-0 plan's 644 made it world-readable).
        "write-kubeconfig-mode": "0600",
        "secrets-encryption": True,
        "token": secrets.token,
        "agent-token": secrets.agent_token,
        "flannel-backend": FLANNEL_BACKEND,
        # Embedded etcd: scheduled snapshots now, more servers later.
        "cluster-init": True,
        "etcd-snapshot-schedule-cron": ETCD_SNAPSHOT_CRON,
        "etcd-snapshot-retention": ETCD_SNAPSHOT_RETENTION,
    }
    if args.snapshot_dir:
        config["etcd-snapshot-dir"] = args.snapshot_dir
    if args.local_storage_path:
        config["default-local-storage-path"] = args.local_storage_path
    if args.system_reserved:
        config["kubelet-arg"] = [f"system-reserved={args.system_reserved}"]
    if args.etcd_s3 is not None:
        s3 = args.etcd_s3
        config |= {
            "etcd-s3": True,
            "etcd-s3-endpoint": s3.endpoint,
            "etcd-s3-bucket": s3.bucket,
            "etcd-s3-region": s3.region,
            "etcd-s3-access-key": secrets.s3_access_key,
            "etcd-s3-secret-key": secrets.s3_secret_key,
        }
        if s3.folder:
            config["etcd-s3-folder"] = s3.folder
        if s3.insecure:
            config["etcd-s3-insecure"] = True
    return yaml.safe_dump(config, sort_keys=True)


def api_url(host: str) -> str:
    """The API server's URL on `host`: an IPv6 address goes in brackets (RFC 3986), or its colons
    would read as a port."""
    try:
        literal = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        literal = host
    return f"https://{literal}:{API_PORT}"


def agent_config(args: K3sClusterArgs, node_name: str, join_token: str) -> str:
    """/etc/rancher/k3s/config.yaml of an agent: the server's address and the full agent token."""
    config = {
        "server": api_url(args.host),
        "node-name": node_name,
        "node-label": [f"{key}={value}" for key, value in sorted(args.node_labels.items())],
        "token": join_token,
    }
    if args.system_reserved:
        config["kubelet-arg"] = [f"system-reserved={args.system_reserved}"]
    return yaml.safe_dump(config, sort_keys=True)


def join_token(ca_hash: str, agent_token: str) -> str:
    """The secure agent token, from the `K10<hash>` prefix of the server's agent-token file."""
    prefix = ca_hash.strip()
    if not _CA_HASH.match(prefix):
        raise ValueError("the server's /var/lib/rancher/k3s/server/agent-token does not start with K10<sha256>")
    return f"{prefix}::node:{agent_token}"


def pulumi_kubeconfig(secret_json: str, server: str) -> str:
    """A kubeconfig for `server` from the ServiceAccount token Secret that k3s-pulumi-token.sh prints."""
    data = json.loads(secret_json).get("data") or {}
    if not data.get("token") or not data.get("ca.crt"):
        raise ValueError("the Pulumi ServiceAccount token Secret has no token or ca.crt yet")
    token = base64.b64decode(data["token"]).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sophia", "cluster": {"server": server, "certificate-authority-data": data["ca.crt"]}}],
            "users": [{"name": "sophia-pulumi", "user": {"token": token}}],
            "contexts": [{"name": "sophia", "context": {"cluster": "sophia", "user": "sophia-pulumi"}}],
            "current-context": "sophia",
        },
        sort_keys=False,
    )


def install_command(version: str, role: str, node_name: str, script: str, snapshot_dir: str | None = None) -> str:
    """Every value is shell-quoted; the config (with the tokens) travels on stdin, never here. The
    variables are SOPHIA_*: k3s's installer saves every K3S_* variable it sees into the service's
    environment (k3s-io/k3s install.sh, create_env_file), where k3s reads them as flags."""
    env = {"SOPHIA_K3S_VERSION": version, "SOPHIA_K3S_ROLE": role, "SOPHIA_K3S_NODE_NAME": node_name}
    if snapshot_dir:
        env["SOPHIA_K3S_SNAPSHOT_DIR"] = snapshot_dir
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    return f"sudo -n env {assignments} bash {shlex.quote(script)}"


def remove_command(script: str, keep: bool) -> str:
    """What `pulumi destroy` runs: the flag travels in the command, so changing keepOnDestroy
    updates this command in place instead of deleting it (which would run it)."""
    return f"sudo -n env SOPHIA_K3S_KEEP_ON_DESTROY={'true' if keep else 'false'} bash {shlex.quote(script)}"


class K3sCluster(pulumi.ComponentResource):
    """Installs a pinned k3s on `host` (and agents on `agents`), waits until the API server and
    each node are ready, and reads back a kubeconfig with a long-lived ServiceAccount token.

    A `pulumi up` with unchanged inputs runs nothing on the hosts; a new config or version
    re-runs the install script, which restarts k3s once. On destroy k3s is uninstalled unless
    `keep_on_destroy`.

    Outputs: `kubeconfig` (secret), `token` (secret), `api_server` (https URL), `node_names`, and
    `nodes` (node name -> the resource that finishes when that node is registered and Ready).
    """

    kubeconfig: pulumi.Output[str]
    token: pulumi.Output[str]
    api_server: pulumi.Output[str]
    node_names: list[str]
    nodes: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: K3sClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:K3sCluster", name, None, opts)
        self.token = pulumi.Output.secret(args.token if args.token is not None else self._password(f"{name}-token"))
        agent_token = pulumi.Output.secret(
            args.agent_token if args.agent_token is not None else self._password(f"{name}-agent-token")
        )
        home = "/root" if args.ssh_user == "root" else f"/home/{args.ssh_user}"
        self._scripts_dir = f"{home}/.sophia-k3s"

        s3 = args.etcd_s3
        secrets = pulumi.Output.all(
            self.token,
            agent_token,
            s3.access_key if s3 else None,
            s3.secret_key if s3 else None,
        ).apply(lambda values: ServerSecrets(*values))
        server = self._host(
            f"{name}-server",
            args,
            args.host,
            args.host_key,
            role="server",
            node_name=args.node_name,
            config=pulumi.Output.secret(secrets.apply(lambda s: server_config(args, s))),
            snapshot_dir=args.snapshot_dir,
        )
        self.node_names = [args.node_name]
        self.nodes = {args.node_name: server}

        server_connection = self._connection(args, args.host, args.host_key)
        if args.agents:
            # Only the CA hash leaves the server: the first field of its agent-token file.
            ca_hash = remote.Command(
                f"{name}-server-ca-hash",
                connection=server_connection,
                create="sudo -n cut -d: -f1 /var/lib/rancher/k3s/server/agent-token",
                triggers=[server.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[server]),
            )
            token_for_agents = pulumi.Output.all(ca_hash.stdout, agent_token).apply(lambda pair: join_token(*pair))
        for index, agent in enumerate(args.agents, start=1):
            agent_name = f"{args.node_name}-agent-{index}"
            self.node_names.append(agent_name)
            self.nodes[agent_name] = self._host(
                f"{name}-agent-{index}",
                args,
                agent,
                args.agent_host_keys.get(agent),
                role="agent",
                node_name=agent_name,
                config=pulumi.Output.secret(token_for_agents.apply(functools.partial(agent_config, args, agent_name))),
                depends_on=[server],
            )

        self.api_server = pulumi.Output.from_input(api_url(args.dns_name or args.host))
        child = pulumi.ResourceOptions(parent=self, depends_on=[server])
        upload_token, token_path = self._upload(f"{name}-token-script", TOKEN_SCRIPT, server_connection, child)
        read = remote.Command(
            f"{name}-kubeconfig",
            connection=server_connection,
            create=f"sudo -n bash {shlex.quote(token_path)}",
            # A ServiceAccount token does not expire, nor change when k3s restarts or rotates its
            # certificates: read again only when the server was reinstalled or the script changed.
            triggers=[server.id, _digest(TOKEN_SCRIPT)],
            logging=remote.Logging.NONE,
            # The previous output (the token) must not be sent back to the host as an environment variable.
            add_previous_output_in_env=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[server, upload_token], additional_secret_outputs=["stdout"]),
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(read.stdout, self.api_server).apply(lambda pair: pulumi_kubeconfig(pair[0], pair[1]))
        )
        self.register_outputs(
            {"kubeconfig": self.kubeconfig, "token": self.token, "api_server": self.api_server, "node_names": self.node_names}
        )

    def _password(self, name: str) -> pulumi.Output[str]:
        return random.RandomPassword(name, length=48, special=False, opts=pulumi.ResourceOptions(parent=self)).result

    @staticmethod
    def _connection(args: K3sClusterArgs, host: str, host_key: str | None) -> remote.ConnectionArgs:
        # pulumi-command v1.2 checks `host_key` with golang.org/x/crypto/ssh.FixedHostKey and
        # ignores the host's key when it is unset (provider/pkg/provider/remote/connection.go).
        return remote.ConnectionArgs(
            host=host,
            port=args.ssh_port,
            user=args.ssh_user,
            private_key=pulumi.Output.secret(args.ssh_private_key),
            host_key=host_key,
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
            triggers=[_digest(script)],
            opts=opts,
        )
        return upload, path

    def _host(
        self,
        prefix: str,
        args: K3sClusterArgs,
        host: str,
        host_key: str | None,
        *,
        role: str,
        node_name: str,
        config: pulumi.Output[str],
        snapshot_dir: str | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> remote.Command:
        connection = self._connection(args, host, host_key)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        upload_install, install_path = self._upload(f"{prefix}-install-script", INSTALL_SCRIPT, connection, child)
        upload_remove, remove_path = self._upload(f"{prefix}-remove-script", REMOVE_SCRIPT, connection, child)
        # Created before the install and destroyed after it: `pulumi destroy` runs its delete
        # (which uninstalls k3s unless keepOnDestroy), while a replacement of the install (which
        # has no delete) never does. It always exists, so turning keepOnDestroy on or off is an
        # in-place update of `delete`, never a deletion of this resource (which would run it).
        uninstall = remote.Command(
            f"{prefix}-uninstall-on-destroy",
            connection=connection,
            create="true",
            delete=remove_command(remove_path, args.keep_on_destroy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[upload_remove]),
        )
        return remote.Command(
            f"{prefix}-install",
            connection=connection,
            create=install_command(args.version, role, node_name, install_path, snapshot_dir),
            stdin=config,
            # Re-run when the uploaded script changes.
            triggers=upload_install.triggers,
            # Progress goes to stderr; the config (with the tokens) is never printed. The script
            # bounds every wait itself: pulumi-command's timeouts cover only the SSH dial.
            logging=remote.Logging.STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[upload_install, uninstall, *depends_on],
                additional_secret_outputs=["stdin"],
            ),
        )
