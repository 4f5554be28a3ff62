"""``deploy/``: the image, the compose file and the Kubernetes manifests, validated offline.

Each overlay is rendered with ``kubectl kustomize`` and checked with ``kubernetes-validate
--strict`` (the Kubernetes objects), the custom resources against their CRD's schema, the
Valkey chart's values against the chart's ``values.schema.json`` (all committed under
tests/data/k8s with their source), the compose file against the compose-spec schema, the
Containerfile with hadolint and every YAML file with yamllint. Then what they name must exist
in the product: every ``LIAISON_*`` variable is a setting (and its value one the setting takes),
every port the one the container's setting serves on, every probe path a route served there,
every command one of the ``liaison`` command — so a renamed setting, route or command fails here.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from services.core.config import read_file_config
from services.core.settings import Settings
from services.entrypoints.cli import SERVABLE, app
from services.entrypoints.http import create_app, create_health_app

pytestmark = pytest.mark.timeout(180)  # kubernetes-validate loads large schemas: slow when loaded
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = ROOT / "tests" / "data" / "k8s"
BIN = Path(sys.executable).parent
OVERLAYS = ("single", "ha")
KUBERNETES = "1.32.0"
"""The Kubernetes version the objects are validated against (kubectl here is 1.32)."""
IMAGE = "liaison-exchange"

NOT_SETTINGS = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
"""Variables of the image that are the interpreter's, not the product's."""

CUSTOM_RESOURCES = {
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster-v1.30.0.json",
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): "flux-helmrelease-v2-helm-controller-v1.6.3.json",
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): (
        "flux-helmrepository-v1-source-controller-v1.9.1.json"
    ),
}


def _run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def _tool(name: str) -> Path:
    """A validator installed by the ``test`` extra (in the venv), or kubectl from the system."""
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert found, f"{name} is missing: `make test` installs it (the test extra, or kubectl)"
    return Path(found)


def _render(overlay: str) -> list[dict[str, Any]]:
    """The overlay's objects (a fresh copy each time: a test may change its own)."""
    return copy.deepcopy(_rendered(overlay))


@functools.cache
def _rendered(overlay: str) -> list[dict[str, Any]]:
    done = _run(_tool("kubectl"), "kustomize", K8S / overlay)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """One overlay's objects, as ``kubectl kustomize`` renders them."""
    return request.param, _render(request.param)


def _strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists properties and allows
    nothing else explicitly — what the API server's pruning would drop silently, refused (as
    kubeconform's strict mode does): a misspelt field is an error, not a no-op."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _check_jsonschema(
    schema: Any, document: Any, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    schema_file, doc_file = tmp_path / "schema.json", tmp_path / "document.json"
    schema_file.write_text(json.dumps(schema))
    doc_file.write_text(json.dumps(document))
    return _run(_tool("check-jsonschema"), "--schemafile", schema_file, doc_file)


# --- the validators -------------------------------------------------------------------------


def test_the_objects_are_valid_kubernetes(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    overlay, objects = rendered
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    done = _run(_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES, "--quiet", path)
    assert done.returncode == 0, done.stdout + done.stderr
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", done.stdout + done.stderr))
    # only the custom resources, each validated against its own schema below
    assert unknown == {kind for (_, kind) in CUSTOM_RESOURCES} & {o["kind"] for o in objects}


def test_the_custom_resources_match_their_crds(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, objects = rendered
    for obj in objects:
        name = CUSTOM_RESOURCES.get((obj["apiVersion"], obj["kind"]))
        if name is None:
            continue
        schema = _strict(json.loads((SCHEMAS / name).read_text()))
        done = _check_jsonschema(schema, obj, tmp_path)
        assert done.returncode == 0, f"{obj['kind']} {obj['metadata']['name']}: {done.stdout}"


def test_a_misspelt_field_of_a_custom_resource_is_refused(tmp_path: Path) -> None:
    """The check above can fail: the CloudNativePG cluster with ``dataDurability`` misspelt."""
    [cluster] = [o for o in _render("ha") if o["kind"] == "Cluster"]
    synchronous = cluster["spec"]["postgresql"]["synchronous"]
    synchronous["dataDurabilty"] = synchronous.pop("dataDurability")
    schema = _strict(
        json.loads((SCHEMAS / CUSTOM_RESOURCES[("postgresql.cnpg.io/v1", "Cluster")]).read_text())
    )
    done = _check_jsonschema(schema, cluster, tmp_path)
    assert done.returncode != 0
    assert "dataDurabilty" in done.stdout


def test_the_ha_cluster_replicates_synchronously() -> None:
    """The ledger acknowledges stream entries after its commit: the commit must survive the
    primary (README, Running on several hosts)."""
    [cluster] = [o for o in _render("ha") if o["kind"] == "Cluster"]
    synchronous = cluster["spec"]["postgresql"]["synchronous"]
    assert synchronous["dataDurability"] == "required"
    assert synchronous["number"] >= 1
    assert cluster["spec"]["instances"] >= synchronous["number"] + 1


def _valkey_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "ha" / "valkey-values.yaml").read_text())
    return loaded


def test_the_valkey_values_match_the_charts_schema(tmp_path: Path) -> None:
    schema = _strict(json.loads((SCHEMAS / "valkey-chart-0.11.0-values.schema.json").read_text()))
    done = _check_jsonschema(schema, _valkey_values(), tmp_path)
    assert done.returncode == 0, done.stdout
    release = next(o for o in _render("ha") if o["kind"] == "HelmRelease")
    assert release["spec"]["chart"]["spec"]["version"] == "0.11.0"  # the schema's version


def _acl_rules() -> dict[str, str]:
    """users.acl: each user's rules, without its password placeholder."""
    rules = {}
    for line in (DEPLOY / "users.acl").read_text().splitlines():
        words = line.split()
        if words[:1] == ["user"]:
            kept = [w for w in words[2:] if not w.startswith("#<")]
            rules[words[1]] = " ".join(kept[1:] if kept[:1] == ["on"] else kept)
    return rules


def test_the_charts_acl_users_are_those_of_users_acl() -> None:
    """The ha overlay's Valkey has the same least-privilege users as deploy/users.acl."""
    users = _valkey_values()["auth"]["aclUsers"]
    rules = _acl_rules()
    assert {name: user["permissions"] for name, user in users.items()} == {
        name: rules[name] for name in users
    }
    assert set(rules) - set(users) == {"agency"}  # one per agency system: added by the operator
    secret = next(o for o in _render("ha") if o["metadata"]["name"] == "valkey-users")
    assert set(secret["stringData"]) == set(users)


def test_the_compose_file_matches_the_compose_spec() -> None:
    done = _run(_tool("check-jsonschema"), "--schemafile", ROOT / "tests" / "data" / "compose-spec.json",
                DEPLOY / "compose.yaml")  # fmt: skip
    assert done.returncode == 0, done.stdout


def test_the_containerfile_passes_hadolint() -> None:
    done = _run(_tool("hadolint"), DEPLOY / "Containerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_yaml_file_passes_yamllint() -> None:
    done = _run(_tool("yamllint"), "--strict", "-c", ".yamllint.yaml", ".", cwd=DEPLOY)
    assert done.returncode == 0, done.stdout


# --- what they name exists in the product ---------------------------------------------------


class Part:
    """One container of the product's image, wherever it is declared."""

    def __init__(
        self, where: str, argv: list[str], env: dict[str, str], ports: dict[str, int],
        probes: list[tuple[str, int | str]],
    ) -> None:  # fmt: skip
        self.where, self.argv, self.env, self.ports, self.probes = where, argv, env, ports, probes

    @property
    def part(self) -> str:
        """What ``liaison serve`` runs here."""
        return self.argv[2] if self.argv[1:2] == ["serve"] else self.argv[1]


def _containerfile() -> tuple[dict[str, str], list[str], list[int], str]:
    """The image's ENV, ENTRYPOINT + CMD, EXPOSE and HEALTHCHECK command."""
    text = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ")
    runtime = text.rsplit("\nFROM ", 1)[1]  # the last stage is the image
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", runtime, re.M):
        env |= dict(re.findall(r"(\w+)=(\S+)", line))
    [entrypoint] = re.findall(r"^ENTRYPOINT (.+)$", runtime, re.M)
    [cmd] = re.findall(r"^CMD (.+)$", runtime, re.M)
    [expose] = re.findall(r"^EXPOSE (.+)$", runtime, re.M)
    [health] = re.findall(r"^HEALTHCHECK .* CMD (.+)$", runtime, re.M)
    argv = json.loads(entrypoint) + json.loads(cmd)
    return env, argv, [int(p) for p in expose.split()], health


def _port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def _k8s_parts(overlay: str) -> Iterator[Part]:
    objects = _render(overlay)
    secrets = {
        o["metadata"]["name"]: o.get("stringData", {}) for o in objects if o["kind"] == "Secret"
    }
    image_env, image_argv, _, _ = _containerfile()
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"]:
            if not container["image"].startswith(IMAGE):
                continue
            env = dict(image_env)
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                env[var["name"]] = secrets[ref["name"]][ref["key"]] if ref else var["value"]
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert str(Path(env["LIAISON_CONFIG"]).parent) in mounts, obj["metadata"]["name"]
            argv = container.get("command", image_argv[:1]) + container.get("args", image_argv[1:])
            probes = [(p["httpGet"]["path"], p["httpGet"]["port"])
                      for p in (container.get("readinessProbe"), container.get("livenessProbe"))
                      if p and "httpGet" in p]  # fmt: skip
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            yield Part(f"{overlay}/{obj['metadata']['name']}", argv, env, ports, probes)


def _interpolated(value: str) -> str:
    """A compose value with ``${VAR:-default}`` as its default and any other ``${…}`` as a
    stand-in (the operator's .env)."""
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
    return re.sub(r"\$\{[^}]*\}", "set-in-dot-env", value)


def _compose_parts() -> Iterator[Part]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    image_env, image_argv, _, _ = _containerfile()
    for name, service in compose["services"].items():
        if not service.get("image", "").startswith(IMAGE):
            continue
        env = image_env | {k: _interpolated(v) for k, v in service.get("environment", {}).items()}
        command = service.get("command", image_argv[1:])
        entrypoint = service.get("entrypoint", image_argv[:1])
        if entrypoint[0] == "sh":  # a wrapper that ends in `exec liaison "$@"`
            assert 'exec liaison "$$@"' in entrypoint[2], name
            entrypoint = ["liaison"]
        ports = {"health": _port(env["LIAISON_HEALTH_ADDR"])}
        if command[1:2] == ["api"]:
            ports["http"] = _port(env["LIAISON_HTTP_ADDR"])
        yield Part(f"compose/{name}", entrypoint + command, env, ports, [("/healthz", "health")])


def _all_parts() -> list[Part]:
    parts = [*_compose_parts()]
    for overlay in OVERLAYS:
        parts += _k8s_parts(overlay)
    return parts


def test_every_variable_is_a_setting_with_a_value_it_takes() -> None:
    known = {f"LIAISON_{name.upper()}" for name in Settings.model_fields}
    for part in _all_parts():
        values: dict[str, Any] = {}
        for name, value in part.env.items():
            if not name.startswith("LIAISON_"):
                assert name in NOT_SETTINGS, (
                    f"{part.where}: {name} is not a variable the image uses"
                )
                continue
            assert name in known, f"{part.where}: {name} is no setting of the product"
            values[name.removeprefix("LIAISON_").lower()] = value
        Settings(**values)  # every value is one its setting takes (a ValidationError names it)


def test_the_sentinel_settings_name_what_the_sentinels_monitor() -> None:
    """The Sentinel addresses are host:port pairs, and the master set is the one the Sentinels
    monitor."""
    monitored = set(re.findall(r"sentinel monitor (\S+) ", (DEPLOY / "sentinel.conf").read_text()))
    sentinels = next(
        o
        for o in _render("ha")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "valkey-sentinel"
    )
    monitored |= set(re.findall(r"sentinel monitor (\S+) ", sentinels["data"]["sentinel.conf"]))
    assert monitored == {"liaison"}
    with_sentinels = [p for p in _all_parts() if "LIAISON_REDIS_SENTINELS" in p.env]
    assert with_sentinels
    for part in with_sentinels:
        assert re.fullmatch(r"[\w.-]+:\d+(,[\w.-]+:\d+)*", part.env["LIAISON_REDIS_SENTINELS"])
        assert part.env.get("LIAISON_REDIS_SENTINEL_MASTER", "liaison") in monitored


def _commands() -> set[str]:
    click = typer.main.get_command(app)
    return set(getattr(click, "commands", {}))


def test_every_command_is_one_of_the_liaison_command() -> None:
    scripts = yaml.safe_load(json.dumps(_pyproject_scripts()))
    commands = _commands()
    _, image_argv, _, _ = _containerfile()
    for where, argv in [("Containerfile", image_argv)] + [(p.where, p.argv) for p in _all_parts()]:
        assert argv[0] in scripts, f"{where}: {argv[0]} is not a script the package installs"
        assert argv[1] in commands, f"{where}: liaison has no command {argv[1]!r}"
        if argv[1] == "serve":
            assert argv[2] in SERVABLE, f"{where}: liaison serve takes no {argv[2]!r}"


def _pyproject_scripts() -> dict[str, str]:
    import tomllib

    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    return scripts


def test_each_part_uses_its_own_valkey_user() -> None:
    """Least privilege: the part's Redis URL names the ACL user of that part."""
    for part in _all_parts():
        user = re.match(r"rediss?://([^:@]+)", part.env["LIAISON_REDIS_URL"])
        assert user, f"{part.where}: {part.env['LIAISON_REDIS_URL']}"
        assert user[1] == part.part, f"{part.where}: {part.env['LIAISON_REDIS_URL']}"
    assert {p.part for p in _all_parts()} == set(SERVABLE)


def _routes(served: str) -> set[str]:
    """The paths the API (``http``) or the health listener (``health``) serves."""
    if served == "http":
        return set(create_app(None).openapi()["paths"])  # type: ignore[arg-type]
    return set(create_health_app(None, None).openapi()["paths"])  # type: ignore[arg-type]


def test_every_port_and_probe_is_one_the_part_serves() -> None:
    for part in _all_parts():
        serves = {"health": _port(part.env["LIAISON_HEALTH_ADDR"])}
        if part.part == "api":
            serves["http"] = _port(part.env["LIAISON_HTTP_ADDR"])
        assert part.ports == serves, f"{part.where}: ports {part.ports}, serves {serves}"
        assert part.probes, f"{part.where}: no probe"
        for path, port in part.probes:
            name = (
                port if isinstance(port, str) else next(n for n, p in serves.items() if p == port)
            )
            assert path in _routes(name), f"{part.where}: {path} is not served on {name}"
        if part.where.startswith(OVERLAYS):
            assert {path for path, _ in part.probes} == {"/readyz", "/healthz"}, part.where


def test_the_image_serves_what_it_exposes_and_checks() -> None:
    env, _, expose, health = _containerfile()
    assert sorted(expose) == sorted(
        [_port(env["LIAISON_HTTP_ADDR"]), _port(env["LIAISON_HEALTH_ADDR"])]
    )
    [(port, path)] = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", health)
    assert int(port) == _port(env["LIAISON_HEALTH_ADDR"])
    assert path in _routes("health")


def test_the_services_and_the_proxy_point_at_the_api_port() -> None:
    [api] = [p for p in _compose_parts() if p.part == "api"]
    caddy = (DEPLOY / "Caddyfile").read_text()
    [upstream] = re.findall(r"dynamic a (\S+) (\d+)", caddy)
    assert upstream == ("api", str(api.ports["http"]))
    for overlay in OVERLAYS:
        objects = _render(overlay)
        [service] = [
            o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "liaison-api"
        ]
        [deployment] = [
            o
            for o in objects
            if o["kind"] == "Deployment" and o["metadata"]["name"] == "liaison-api"
        ]
        names = {
            p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_the_shipped_configuration_is_one_the_product_reads() -> None:
    config = read_file_config(K8S / "base" / "liaison.yaml")
    assert config.principals
