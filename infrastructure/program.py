"""The program: validate the stack's configuration, connect to its cluster, deploy the workload."""

from __future__ import annotations

import pulumi

from components.backup import RedisBackup, RedisBackupArgs, S3Target
from components.images import Build, RegistryCredentials, ServiceImages, ServiceImagesArgs
from components.ingress import Ingress, IngressArgs, Route
from components.mcp_credentials import McpCredentials, McpCredentialsArgs
from components.namespace import Namespace, NamespaceArgs
from components.redis import Redis, RedisArgs
from components.service import Autoscaling, Service, ServiceArgs, Tracing
from components.snowflake import SnowflakeArgs, SnowflakeConnection
from components.telemetry import CollectorArgs, OtelCollector
from infrastructure import capacity, catalog, cluster, sizing, traffic
from infrastructure.secrets import secret_output
from stacks import loader
from stacks.model import StackConfig
from stacks.quantities import parse_quantity


def main() -> None:
    """Run under the Pulumi engine: a bad configuration stops here, before any resource."""
    stack = pulumi.get_stack()
    try:
        loaded = loader.validate(loader.read_runtime(stack))
        capacity.check(stack, loaded.config, catalog.PROJECT_ROOT)
    except loader.ConfigError as exc:
        raise pulumi.RunError(f"invalid stack configuration:\n{exc}") from None
    for note in loaded.notes:  # shown by `pulumi preview` and `pulumi up`
        pulumi.log.warn(note)
    build(loaded.config)


def build(config: StackConfig) -> None:
    """Register every resource of the stack described by `config` (already valid)."""
    connection = cluster.connect(config)
    on_cluster = pulumi.ResourceOptions(provider=connection.provider)
    production = config.environment == "production"
    specs = catalog.services(config)

    quota = sizing.quota(config, specs)
    namespace = Namespace(
        "sophia",
        NamespaceArgs(
            name=config.namespace,
            environment=config.environment,
            quota_cpu=quota.cpu,
            quota_memory=quota.memory,
            quota_pods=quota.pods,
            quota_storage=quota.storage,
            quota_gpus=quota.gpus,
            default_cpu=config.resources.cpu,
            default_memory=config.resources.memory,
        ),
        opts=pulumi.ResourceOptions(provider=connection.provider, protect=production),
    )
    ns = namespace.name

    auth = config.registry_auth
    registry_password = secret_output(auth.password) if auth is not None else None
    credentials = None
    if auth is not None and registry_password is not None:
        credentials = RegistryCredentials(auth.server, auth.username, registry_password)
    source_root = catalog.PROJECT_ROOT / config.images.source_root
    images = ServiceImages(
        "images",
        ServiceImagesArgs(
            namespace=ns,
            registry=config.images.registry,
            tag=config.images.tag,
            builds={
                spec.image: Build(
                    context=str(source_root / spec.context),
                    dockerfile=str(source_root / spec.context / spec.dockerfile),
                    args=spec.build_args,
                )
                for spec in specs
            },
            build=config.images.build,
            credentials=credentials,
            digests=config.images.digests,
        ),
        opts=on_cluster,
    )

    # Who talks to whom: each workload's NetworkPolicy allows exactly its flows.
    matrix = traffic.flows(config, specs)
    redis = Redis(
        traffic.REDIS,
        RedisArgs(
            namespace=ns,
            image=config.redis.image,
            storage_size=config.redis.storage_size,
            storage_class=config.redis.storage_class,
            cpu=config.redis.resources.cpu,
            memory=config.redis.resources.memory,
            memory_bytes=int(parse_quantity(config.redis.resources.memory)),
            password=secret_output(config.redis.password),
            rotation=config.redis.password_rotation,
            keep_previous_password=config.redis.keep_previous_password,
            previous_password=secret_output(config.redis.previous_password),
            retain_data=production,
            data_path=config.redis.data_path,
            ingress=traffic.ingress(traffic.REDIS, matrix),
            admin_egress=traffic.egress(traffic.ACL_SYNC, matrix),
        ),
        opts=on_cluster,
    )
    backup_redis(config, ns, redis, traffic.egress(traffic.BACKUP, matrix), on_cluster)

    sf = config.snowflake
    snowflake = SnowflakeConnection(
        "snowflake",
        SnowflakeArgs(
            namespace=ns,
            account=sf.account,
            user=sf.user,
            role=sf.role,
            warehouse=sf.warehouse,
            database=sf.database,
            schema=sf.schema_name,
            private_key=secret_output(sf.private_key) if sf.auth == "keypair" else None,
            private_key_passphrase=secret_output(sf.private_key_passphrase) if sf.auth == "keypair" else None,
            password=secret_output(sf.password) if sf.auth == "password" else None,
        ),
        opts=on_cluster,
    )

    mcp_credentials = {
        server: McpCredentials(
            f"{catalog.mcp_name(server)}-credentials",
            McpCredentialsArgs(ns, {key: secret_output(value) for key, value in values.items()}),
            opts=on_cluster,
        )
        for server, values in config.mcp_credentials.items()
    }

    tracing = None
    if config.features.tracing:
        collector = OtelCollector(
            traffic.COLLECTOR,
            CollectorArgs(
                namespace=ns,
                image=config.telemetry.collector_image,
                environment=config.environment,
                exporter_endpoint=config.telemetry.exporter_endpoint,
                exporter_insecure=config.telemetry.exporter_plaintext,
                replicas=sizing.collector_replicas(config),
                ingress=traffic.ingress(traffic.COLLECTOR, matrix),
                egress=traffic.egress(traffic.COLLECTOR, matrix),
            ),
            opts=on_cluster,
        )
        tracing = Tracing(endpoint=collector.endpoint, environment=config.environment)

    autoscaling = (
        Autoscaling(config.autoscaler.max_replicas, config.autoscaler.target_cpu_utilization)
        if config.features.autoscaling
        else None
    )
    services: dict[str, Service] = {}
    for spec in specs:
        gpu = spec.config_name in config.gpu_services
        env: dict[str, pulumi.Input[str]] = {"SOPHIA_ENVIRONMENT": config.environment}
        # Where the services it calls are (MEMORY_URL, MCP_SERVER_URLS...), from the catalog.
        env.update(catalog.callee_env(spec, specs, config.namespace))
        secret_env: dict[str, tuple[pulumi.Input[str], str]] = {}
        annotations: dict[str, pulumi.Input[str]] = {}
        if spec.uses_redis:
            env["REDIS_URL"] = redis.url
            secret_env["REDIS_PASSWORD"] = (redis.secret_name, "password")
            # Environment from a Secret is read at start: restart with a new password.
            annotations["sophia.ai/redis-config-hash"] = redis.config_hash
        env_from = [snowflake.secret_name] if spec.uses_snowflake else []
        if spec.component == "mcp-server" and (server_credentials := mcp_credentials.get(spec.config_name)):
            env_from.append(server_credentials.secret_name)
            annotations["sophia.ai/credentials-hash"] = server_credentials.config_hash
        if spec.uses_snowflake:
            annotations["sophia.ai/snowflake-credential-hash"] = snowflake.credential_hash
        services[spec.name] = Service(
            spec.name,
            ServiceArgs(
                namespace=ns,
                image=images.refs[spec.image],
                port=spec.port,
                replicas=spec.replicas,
                cpu=spec.cpu,
                memory=spec.memory,
                component=spec.component,
                env=env,
                secret_env=secret_env,
                pod_annotations=annotations,
                env_from_secrets=env_from,
                ingress=traffic.ingress(spec.name, matrix),
                egress=traffic.egress(spec.name, matrix),
                gpus=1 if gpu else 0,
                autoscaling=autoscaling,
                monitoring=config.features.monitoring,
                tracing=tracing,
                image_pull_secret=images.pull_secret_name,
                monitoring_ready=connection.monitoring_ready,
                image_is_digest=config.images.build or spec.image in config.images.digests,
            ),
            # Only GPU workloads wait for the GPU operator, the slowest step of a deploy.
            opts=pulumi.ResourceOptions(provider=connection.provider, depends_on=connection.gpu_ready if gpu else []),
        )

    if config.ingress.enabled and config.ingress.host:
        routes = [Route("/api", services["orchestrator"].service_name, catalog.ORCHESTRATOR_PORT)]
        if "frontend" in services:
            routes.append(Route("/", services["frontend"].service_name, catalog.FRONTEND_PORT))
        Ingress("ingress", IngressArgs(ns, config.ingress.host, routes, config.ingress.tls_secret), opts=on_cluster)

    pulumi.export("namespace", ns)
    pulumi.export("services", {spec.name: spec.port for spec in specs})
    pulumi.export("images", images.refs)
    pulumi.export("redisUrl", redis.url)
    if connection.kubeconfig is not None:
        pulumi.export("kubeconfig", pulumi.Output.secret(connection.kubeconfig))


def backup_redis(
    config: StackConfig, ns: pulumi.Input[str], redis: Redis, egress: list[dict], opts: pulumi.ResourceOptions
) -> None:
    """Redis's backups, as configured (`sophia-ai:redis.backup`)."""
    backup = config.redis.backup
    if backup is None:
        return
    s3 = None
    if backup.s3 is not None:
        access_key_id = secret_output(backup.s3.access_key_id)
        secret_access_key = secret_output(backup.s3.secret_access_key)
        # The loader requires both secrets under pulumi up; offline they are placeholders.
        assert access_key_id is not None and secret_access_key is not None
        s3 = S3Target(
            backup.s3.endpoint,
            backup.s3.bucket,
            backup.s3.region,
            backup.s3.folder,
            access_key_id,
            secret_access_key,
            backup.s3.insecure,
            backup.s3.port,
        )
    RedisBackup(
        traffic.BACKUP,
        RedisBackupArgs(
            namespace=ns,
            redis_host=redis.service_name,
            password_secret=redis.secret_name,
            redis_image=config.redis.image,
            schedule=backup.schedule,
            keep=backup.keep,
            snapshot_size=config.redis.resources.memory,
            s3=s3,
            host_path=backup.host_path,
            egress=egress,
        ),
        opts=opts,
    )
