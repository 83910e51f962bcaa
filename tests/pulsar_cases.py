"""Functions run through Pulsar's own worker classes (tests/pulsar-runtime).

Each case is a worker config (tests/pulsar-fixtures/configs/<config>.yml, accepted by Pulsar
4.0.7's WorkerConfig.load) and a function config as `pulsar-admin functions create` sends it.
`python -m tests.pulsar_cases` (make pulsar-fixtures) renders every case through the worker and
writes tests/pulsar-fixtures/<id>.json: the Service and StatefulSet exactly as the worker sent
them, or the stage and message where the worker refused. Unit tests read those files; the e2e
test runs the same cases through `KubernetesRuntime.start()` against the real API server.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import pulsar_harness

FIXTURES = Path(__file__).resolve().parent / "pulsar-fixtures"
CONFIGS = FIXTURES / "configs"

SECRETS = {"DB_PASSWORD": {"path": "db-creds", "key": "password"}}
OPTIONS = {
    "extraLabels": {"team": "data eng"},
    "nodeSelectorLabels": {"disktype": "ssd"},
    "resourceRequirements": {"limits": {"cpu": "2"}},
}
LONG_NAME = "a" * 62 + "-b"  # the worker's label conversion leaves a trailing '-'


@dataclass(frozen=True)
class Case:
    id: str
    config: str
    runtime: str = "JAVA"
    name: str = "exclaim"
    secrets: dict[str, Any] | None = None
    options: dict[str, Any] | str | None = None
    auth_data: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    # what the e2e expects of start() through our webhooks: "ok" or the rule that denies
    expect: str = "ok"
    e2e: bool = True
    config_file: Path | None = None  # instead of configs/<config>.yml

    def function(self) -> dict[str, Any]:
        fn: dict[str, Any] = {
            "tenant": "public",
            "namespace": "default",
            "name": self.name,
            "inputs": ["persistent://public/default/in"],
            "output": "persistent://public/default/out",
            "runtime": self.runtime,
        }
        if self.runtime == "JAVA":
            fn["className"] = "org.example.ExclamationFunction"
            fn["jar"] = "api-examples.jar"
        elif self.runtime == "PYTHON":
            fn["className"] = "exclamation_function.ExclamationFunction"
            fn["py"] = "exclamation_function.py"
        else:
            fn["go"] = "exclamation-go"
        if self.secrets is not None:
            fn["secrets"] = self.secrets
        if self.options is not None:
            fn["customRuntimeOptions"] = (
                self.options if isinstance(self.options, str) else json.dumps(self.options)
            )
        if self.resources:
            fn["resources"] = self.resources
        return fn

    def config_path(self) -> Path:
        return self.config_file or CONFIGS / f"{self.config}.yml"

    def harness_case(self, config_path: Path | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "workerConfig": str(config_path or self.config_path()),
            "function": self.function(),
            "authData": self.auth_data,
        }


def _override(key: str) -> Case:
    return Case(
        f"override-{key}",
        "sa-token-ca",
        options={"extraLabels": {key: "x"}},
        expect="customizer/options",
    )


CASES: tuple[Case, ...] = (
    Case("java", "sa-token-ca"),
    Case("java-secrets-options", "sa-token-ca", secrets=SECRETS, options=OPTIONS),
    Case("python-secrets", "sa-token-ca", runtime="PYTHON", secrets=SECRETS),
    Case("go-secrets-options", "sa-token-ca", runtime="GO", secrets=SECRETS, options=OPTIONS),
    Case("java-no-ca", "sa-token-no-ca", secrets=SECRETS),
    Case("python-no-ca-options", "sa-token-no-ca", runtime="PYTHON", options=OPTIONS),
    Case("go-no-ca", "sa-token-no-ca", runtime="GO"),
    Case("java-auth-disabled", "auth-disabled", secrets=SECRETS, options=OPTIONS),
    Case(
        "label-truncated-to-dash",
        "sa-token-ca",
        name=LONG_NAME,
        options={"jobName": "long-fn", "extraLabels": {"team": "data eng"}},
    ),
    Case(
        "gson-lenient-options",
        "sa-token-ca",
        options=(
            "{'extraLabels': {team: 'data eng', size: 1.50, big: 1e3, gone: null},"
            " tolerations: [{key: 'spot', operator: Exists, effect: NoExecute, tolerationSeconds: 30.0}],"
            " resourceRequirements: {limits: {cpu: '2', 'nvidia.com/gpu': '1'}}}"
        ),
    ),
    Case(
        "duplicate-worker-toleration",
        "sa-token-ca",
        options={
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 10,
                }
            ]
        },
    ),
    _override("name"),
    _override("component"),
    _override("tenant"),
    _override("namespace"),
    Case("token-secret", "token-secret", auth_data="abc123"),
    Case(
        "example-config",
        "example",
        name="exclamation",
        secrets=SECRETS,
        options={"nodeSelectorLabels": {"disktype": "ssd"}},
        config_file=FIXTURES.parent.parent / "examples" / "functions_worker.yml",
    ),
    Case(
        "legacy-block",
        "legacy",
        resources={"cpu": 0.2, "ram": 268435456},
    ),
)


def by_id(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


def fixture(result: dict[str, Any]) -> dict[str, Any]:
    """What is checked in: the objects as sent, or where and why the worker stopped."""
    kept: dict[str, Any] = {"id": result["id"], "stage": result["stage"]}
    if result.get("error"):
        kept["error"] = result["error"]["message"]
    for kind in ("service", "statefulset"):
        if result.get(kind) is not None:
            kept[kind] = result[kind]
    return kept


def load_fixture(case_id: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{case_id}.json").read_text(encoding="utf-8"))


def main() -> int:
    command = pulsar_harness.build()
    results = pulsar_harness.run(command, "render", [c.harness_case() for c in CASES])
    for case in CASES:
        path = FIXTURES / f"{case.id}.json"
        path.write_text(
            json.dumps(fixture(results[case.id]), indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        print(f"{path.relative_to(FIXTURES.parent.parent)}: {results[case.id]['stage']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
