"""Build StatefulSets shaped exactly as Pulsar's functions worker makes them (KubernetesRuntime,
reference/pulsar-runtime.md §3-§6, §10, §11), for fixtures, end-to-end tests and benchmarks.

Re-implemented from the documented facts; no Pulsar code.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from webhook.core import naming

Runtime = Literal["JAVA", "PYTHON", "GO"]
Auth = Literal["none", "sa-token", "token-secret"]


def _java_round(value: float) -> int:
    return math.floor(value + 0.5)


def _labels(tenant: str, namespace: str, name: str, component: str) -> dict[str, str]:
    return {
        "component": component,
        "tenant": naming.pulsar_label_value(tenant),
        "namespace": naming.pulsar_label_value(namespace),
        "name": naming.pulsar_label_value(name),
    }


def function_details(
    *,
    tenant: str,
    namespace: str,
    name: str,
    runtime: Runtime = "JAVA",
    secrets: dict[str, Any] | None = None,
    custom_runtime_options: dict[str, Any] | str | None = None,
    cpu: float = 1.0,
    ram: int = 1073741824,
) -> dict[str, Any]:
    """proto3 JSON as JsonFormat prints it: defaults omitted, int64 as strings."""
    details: dict[str, Any] = {"tenant": tenant, "namespace": namespace, "name": name}
    details["className"] = "org.example.ExclamationFunction"
    if runtime != "JAVA":
        details["runtime"] = runtime
    details["parallelism"] = 1
    details["source"] = {"inputSpecs": {f"persistent://{tenant}/{namespace}/in": {}}}
    details["sink"] = {"topic": f"persistent://{tenant}/{namespace}/out"}
    resources: dict[str, Any] = {}
    if cpu:
        resources["cpu"] = cpu
    if ram:
        resources["ram"] = str(ram)
    if resources:
        details["resources"] = resources
    if secrets is not None:
        details["secretsMap"] = json.dumps(secrets, separators=(",", ":"))
    if custom_runtime_options is not None:
        details["customRuntimeOptions"] = (
            custom_runtime_options
            if isinstance(custom_runtime_options, str)
            else json.dumps(custom_runtime_options, separators=(",", ":"))
        )
    details["componentType"] = "FUNCTION"
    return details


def _script(details: dict[str, Any], runtime: Runtime, auth: Auth, ca: bool, secrets: bool) -> str:
    tenant, namespace, name = details["tenant"], details["namespace"], details["name"]
    download = (
        "/pulsar/bin/pulsar-admin --admin-url http://pulsar-broker:8080 functions download "
        f"--tenant {tenant} --namespace {namespace} --name {name} "
        f"--destination-file /pulsar/{'api-examples.jar' if runtime == 'JAVA' else 'fn.py' if runtime == 'PYTHON' else 'fn'}"
    )
    head = f"{download} && SHARD_ID=${{POD_NAME##*-}} && echo shardId=${{SHARD_ID}} && "
    details_json = json.dumps(details, separators=(",", ":"))
    auth_flags = ""
    if auth != "none":
        auth_flags = (
            " --client_auth_plugin org.apache.pulsar.client.impl.auth.AuthenticationToken"
            " --client_auth_params file:///etc/auth/token"
            " --use_tls false --tls_allow_insecure false --hostname_verification_enabled false"
        )
        if ca:
            auth_flags += (
                f" --tls_trust_cert_path /etc/auth/{'ca.crt' if auth == 'sa-token' else 'ca.pem'}"
            )
    tail = (
        f" --instance_id $SHARD_ID --function_id 3c6a4b1e-0f1d-4c8a-9d61-2f7c1e0b9a42 --function_version 0"
        f" --function_details '{details_json}' --pulsar_serviceurl pulsar://pulsar-broker:6650"
        f"{auth_flags} --max_buffered_tuples 1024 --port 9093 --metrics_port 9094"
        # Pulsar 4.0.7 writes the Java-only flag here (tests/pulsar-fixtures)
        + (" --pending_async_requests 1000" if runtime == "JAVA" else "")
        + " --expected_healthcheck_interval -1"
    )
    if secrets and runtime in ("JAVA", "PYTHON"):
        provider = (
            "org.apache.pulsar.functions.secretsprovider.EnvironmentBasedSecretsProvider"
            if runtime == "JAVA"
            else "secretsprovider.EnvironmentBasedSecretsProvider"
        )
        tail += f" --secrets_provider {provider}"
    tail += " --cluster_name standalone"
    if runtime == "JAVA":
        ram = int(details.get("resources", {}).get("ram", "0"))
        xmx = f" -Xmx{ram}" if ram else ""
        return head + (
            "exec java -cp /pulsar/instances/java-instance.jar:/pulsar/instances/deps/* "
            "-Dpulsar.functions.extra.dependencies.dir=/pulsar/instances/deps "
            "-Dpulsar.functions.instance.classpath=/pulsar/lib/* "
            "-Dlog4j.configurationFile=kubernetes_instance_log4j2.xml "
            f"-Dpulsar.function.log.dir=logs/functions/{tenant}/{namespace}/{name} "
            f"-Dpulsar.function.log.file={name}-$SHARD_ID "
            # as Pulsar 4.0.7 writes them (tests/pulsar-fixtures); no -Dpulsar.log.level
            "-Dio.netty.tryReflectionSetAccessible=true "
            "-Dorg.apache.pulsar.shade.io.netty.tryReflectionSetAccessible=true "
            "-Dio.grpc.netty.shaded.io.netty.tryReflectionSetAccessible=true "
            "--add-opens java.base/java.nio=ALL-UNNAMED "
            "--add-opens java.base/jdk.internal.misc=ALL-UNNAMED "
            f"--add-opens java.base/java.util.zip=ALL-UNNAMED{xmx} "
            "org.apache.pulsar.functions.instance.JavaInstanceMain --jar /pulsar/api-examples.jar"
            f"{tail} --nar_extraction_directory /tmp/pulsar-nar"
        )
    if runtime == "PYTHON":
        return head + (
            "PYTHONPATH=${PYTHONPATH}:/pulsar/instances/deps exec python3 "
            "/pulsar/instances/python-instance/python_instance_main.py --py /pulsar/fn.py "
            f"--logging_directory logs/functions --logging_file {name} "
            "--logging_config_file /pulsar/conf/functions-logging/console_logging_config.ini"
            f"{tail}"
        )
    conf = {
        "funcID": "3c6a4b1e",
        "funcVersion": "0",
        "maxBufTuples": 1024,
        "port": 9093,
        "clusterName": "standalone",
        "pulsarServiceURL": "pulsar://pulsar-broker:6650",
        "killAfterIdleMs": 0,
        "tenant": tenant,
        "nameSpace": namespace,
        "name": name,
        "secretsMap": details.get("secretsMap", ""),
        "runtime": 3,
        "parallelism": 1,
        "functionDetails": details_json,
        "metricsPort": 9094,
    }
    if auth != "none":
        conf["clientAuthenticationPlugin"] = (
            "org.apache.pulsar.client.impl.auth.AuthenticationToken"
        )
        conf["clientAuthenticationParameters"] = "file:///etc/auth/token"
        if ca:
            conf["tlsTrustCertsFilePath"] = "/etc/auth/ca.crt"
    return (
        head
        + f"chmod 777 /pulsar/fn && exec /pulsar/fn -instance-conf '{json.dumps(conf, separators=(',', ':'))}'"
    )


def _resources(cpu: float, ram: int) -> dict[str, Any]:
    ram = ram or 1073741824
    cpu_limit = cpu or 1.0
    cpu_text = str(_java_round(cpu_limit * 1000) / 1000)
    return {
        "limits": {"cpu": cpu_text, "memory": str(ram)},
        "requests": {"cpu": cpu_text, "memory": str(ram)},
    }


def statefulset(
    *,
    tenant: str = "public",
    namespace: str = "default",
    name: str = "exclamation",
    runtime: Runtime = "JAVA",
    k8s_namespace: str = "pulsar-functions",
    secrets: dict[str, Any] | None = None,
    secrets_configurator: bool = True,
    auth: Auth = "none",
    ca_secret: str | None = None,
    audience: str | None = None,
    expiration: int = 600,
    custom_runtime_options: dict[str, Any] | str | None = None,
    cpu: float = 1.0,
    ram: int = 1073741824,
    job_name: str | None = None,
    image: str = "apachepulsar/pulsar:3.3.0",
) -> dict[str, Any]:
    """A function StatefulSet exactly as the worker submits it (no customizer applied)."""
    details = function_details(
        tenant=tenant,
        namespace=namespace,
        name=name,
        runtime=runtime,
        secrets=secrets,
        custom_runtime_options=custom_runtime_options,
        cpu=cpu,
        ram=ram,
    )
    job = naming.job_name(tenant=tenant, namespace=namespace, name=name, custom=job_name)
    labels = _labels(tenant, namespace, name, "function")
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    injected = bool(secrets) and secrets_configurator
    if injected:
        for env_name, ref in (secrets or {}).items():
            if isinstance(ref, dict) and "path" in ref and "key" in ref:
                env.append(
                    {
                        "name": env_name,
                        "valueFrom": {"secretKeyRef": {"name": ref["path"], "key": ref["key"]}},
                    }
                )
    container: dict[str, Any] = {
        "name": "pulsarfunction",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", _script(details, runtime, auth, ca_secret is not None, injected)],
        "env": env,
        "ports": [
            {"name": "grpc", "containerPort": 9093},
            {"name": "prometheus", "containerPort": 9094},
        ],
        "resources": _resources(cpu, ram),
    }
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "tolerations": [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
            for key in (
                "node.kubernetes.io/not-ready",
                "node.alpha.kubernetes.io/notReady",
                "node.alpha.kubernetes.io/unreachable",
            )
        ],
        "containers": [container],
    }
    if auth == "sa-token":
        token: dict[str, Any] = {}
        if audience:
            token["audience"] = audience
        token["expirationSeconds"] = expiration
        token["path"] = "token"
        volumes: list[dict[str, Any]] = []
        if ca_secret:
            volumes.append(
                {
                    "name": "ca-cert",
                    "secret": {
                        "secretName": ca_secret,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    },
                }
            )
        volumes.append(
            {
                "name": "service-account-token",
                "projected": {"sources": [{"serviceAccountToken": token}]},
            }
        )
        pod["volumes"] = volumes
        container["volumeMounts"] = [
            {"name": "service-account-token", "mountPath": "/etc/auth", "readOnly": True}
        ]
        if ca_secret:
            container["volumeMounts"].append(
                {"name": "ca-cert", "mountPath": "/etc/auth", "readOnly": True}
            )
    elif auth == "token-secret":
        pod["volumes"] = [{"name": "function-auth", "secret": {"secretName": "pf-secret-z7mxx"}}]
        container["volumeMounts"] = [
            {"name": "function-auth", "mountPath": "/etc/auth", "readOnly": True}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": job, "namespace": k8s_namespace, "labels": dict(labels)},
        "spec": {
            "serviceName": job,
            "replicas": 1,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9094"},
                },
                "spec": pod,
            },
        },
    }
