"""The Sophia service images: references by tag, or built and pushed by pulumi-docker and
referenced by digest; and the pull secret for a private registry."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components.pods import labels


@dataclass
class Build:
    context: str
    dockerfile: str
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RegistryCredentials:
    server: str
    username: str
    password: pulumi.Input[str]


@dataclass
class ServiceImagesArgs:
    namespace: pulumi.Input[str]
    registry: str
    tag: str
    # Image name (`sophia-<service>`) -> how to build it; None references the tags as they are.
    builds: Mapping[str, Build]
    build: bool = False
    credentials: RegistryCredentials | None = None
    # Image name -> digest of the image CI built for `tag`: deployed as `tag@digest` (when not built here).
    digests: Mapping[str, str] = field(default_factory=dict)


class ServiceImages(pulumi.ComponentResource):
    """Outputs: `refs` (image name -> reference to deploy; a digest when built or given, so an
    unchanged build does not roll pods and a new one does), `pull_secret_name` (None without credentials)."""

    refs: dict[str, pulumi.Output[str]]
    pull_secret_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: ServiceImagesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:ServiceImages", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        creds = args.credentials
        self.refs = {}
        for image, build in args.builds.items():
            tagged = f"{args.registry}/{image}:{args.tag}"
            if not args.build:
                digest = args.digests.get(image)
                self.refs[image] = pulumi.Output.from_input(f"{tagged}@{digest}" if digest else tagged)
                continue
            built = docker.Image(
                f"{name}-{image}",
                image_name=tagged,
                build=docker.DockerBuildArgs(
                    context=build.context, dockerfile=build.dockerfile, args=dict(build.args), platform="linux/amd64"
                ),
                registry=docker.RegistryArgs(
                    server=creds.server, username=creds.username, password=pulumi.Output.secret(creds.password)
                )
                if creds
                else None,
                opts=child,
            )
            self.refs[image] = built.repo_digest
        self.pull_secret_name = None
        if creds is not None:
            config = pulumi.Output.secret(creds.password).apply(lambda pw: _docker_config(creds.server, creds.username, pw))
            secret = k8s.core.v1.Secret(
                f"{name}-pull-secret",
                metadata={"name": "registry", "namespace": args.namespace, "labels": labels("registry", "credentials")},
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": config},
                opts=child,
            )
            self.pull_secret_name = secret.metadata.name
        self.register_outputs({"refs": self.refs, "pull_secret_name": self.pull_secret_name})


def _docker_config(server: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})
