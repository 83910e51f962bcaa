"""webhook.config: a functions_worker.yml (plus our `webhook:` section) -> one frozen Config.

Every error is one line that names the key; features follow the worker's class names.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from webhook.core import config, quantity, rules
from webhook.core.config import Config, ConfigError, Resources

SA = config.SA_TOKEN_AUTH_PROVIDER
SECRETS_TOKEN = config.SECRETS_TOKEN_AUTH_PROVIDER
K8S_SECRETS = config.KUBERNETES_SECRETS_CONFIGURATOR
BASIC = config.BASIC_CUSTOMIZER

FULL_WORKER_FILE = textwrap.dedent(
    f"""\
    # a functions_worker.yml as an operator runs it (keys the webhook ignores included)
    workerId: standalone
    workerHostname: localhost
    workerPort: 6750
    configurationMetadataStoreUrl: zk:zookeeper:2181
    pulsarFunctionsNamespace: public/functions
    numFunctionPackageReplicas: 1
    downloadDirectory: download/pulsar_functions
    authenticationEnabled: true
    functionRuntimeFactoryClassName: org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory
    functionRuntimeFactoryConfigs:
      k8Uri:
      jobNamespace: pulsar-functions
      jobName:
      pulsarDockerImageName: apachepulsar/pulsar:3.3.0
      functionDockerImages:
        JAVA: apachepulsar/pulsar-java:3.3.0
        PYTHON: apachepulsar/pulsar-python:3.3.0
        GO: apachepulsar/pulsar-go:3.3.0
      imagePullPolicy: IfNotPresent
      pulsarRootDir: /pulsar
      submittingInsidePod: true
      pulsarServiceUrl: pulsar://pulsar-broker:6650
      pulsarAdminUrl: http://pulsar-broker:8080
      installUserCodeDependencies: false
      customLabels:
        team: data
        cost-center: 42
      expectedMetricsCollectionInterval: 30
      percentMemoryPadding: 10
      cpuOverCommitRatio: 1.0
      memoryOverCommitRatio: 1.0
      grpcPort: 9093
      metricsPort: 9094
      narExtractionDirectory: /tmp/pulsar-nar
      gracePeriodSeconds: 5
      kubernetesFunctionAuthProviderConfig:
        serviceAccountTokenExpirationSeconds: "600"
        serviceAccountTokenAudience: pulsar
        brokerClientTrustCertsSecretName: broker-ca
    secretsProviderConfiguratorClassName: {K8S_SECRETS}
    functionAuthProviderClassName: {SA}
    runtimeCustomizerClassName: {BASIC}
    runtimeCustomizerConfig:
      jobNamespace: custom-ns
      extraLabels: {{label: test}}
      extraAnnotations: {{annotation: test}}
      nodeSelectorLabels: {{selector: test}}
      tolerations:
        - {{key: test, value: test, effect: test}}
        - {{key: dedicated, operator: Equal, value: pulsar, effect: NoSchedule, tolerationSeconds: "60"}}
      resourceRequirements:
        requests: {{cpu: "1", memory: 4G}}
        limits: {{cpu: "2", memory: 8G}}
    functionInstanceMinResources: {{cpu: 0.1, ram: 1024}}
    functionInstanceMaxResources: {{cpu: 16, ram: "17179869184"}}
    functionInstanceResourceGranularities: {{cpu: 0.1, ram: 1048576, disk: 1}}
    functionInstanceResourceChangeInLockStep: true
    webhook:
      naming: {{labelStyle: pulsar-runtime}}
      secrets: {{verify: off}}
      tokens:
        allowedAudiences: [pulsar]
        requireAudience: true
        maxExpirationSeconds: 7200
        serviceAccountName: "pf-{{tenant}}-{{namespace}}-{{name}}"
        automountServiceAccountToken: false
      customizer:
        allowedOptions: [extraLabels, tolerations]
        allowedTolerationKeys: [dedicated]
        allowedNodeSelectorKeys: [disktype]
        maxResources: {{cpu: "4", memory: 8Gi}}
      policy:
        enforcement: warn
        rules: {{naming/statefulset-name: deny, secrets/exists: off}}
      server: {{port: 9443, metricsPort: 9090, certDir: /certs, clientCA: /ca.crt, tlsMinVersion: 1.3}}
      kube: {{kubeconfig: /kubeconfig, timeoutSeconds: 1.5}}
    """
)

LEGACY_WORKER_FILE = textwrap.dedent(
    f"""\
    authenticationEnabled: true
    functionAuthProviderClassName: {SA}
    kubernetesContainerFactory: {{kubernetesFunctionAuthProviderConfig: {{serviceAccountTokenExpirationSeconds: "600", serviceAccountTokenAudience: "aud", brokerClientTrustCertsSecretName: "my-secret"}}}}
    """
)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config.loads(text, source="functions_worker.yml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("functions_worker.yml:")
    return message


# ---------------------------------------------------------------------------------------------
# loading


def test_a_full_worker_file_turns_every_feature_on_and_reads_every_honoured_key() -> None:
    cfg = config.loads(FULL_WORKER_FILE, source="functions_worker.yml")
    assert (cfg.secrets_enabled, cfg.tokens_enabled, cfg.customizer_enabled) == (True, True, True)
    assert cfg.token_secret_auth is False
    assert cfg.job_namespace == "pulsar-functions"
    assert cfg.job_name is None
    assert cfg.custom_labels == {"team": "data", "cost-center": "42"}
    assert (cfg.token_audience, cfg.token_expiration_seconds, cfg.ca_secret_name) == (
        "pulsar",
        600,
        "broker-ca",
    )
    options = cfg.cluster_options
    assert options.job_namespace == "custom-ns"
    assert options.extra_labels == {"label": "test"}
    assert options.extra_annotations == {"annotation": "test"}
    assert options.node_selector_labels == {"selector": "test"}
    assert options.tolerations == (
        {"key": "test", "value": "test", "effect": "test"},
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "pulsar",
            "effect": "NoSchedule",
            "tolerationSeconds": 60,
        },
    )
    limits = options.resource_requirements["limits"]
    assert quantity.parse(limits["cpu"]) == 2
    assert quantity.parse(limits["memory"]) == 8 * 10**9
    assert options.resource_requirements["requests"] == {"cpu": "1", "memory": "4G"}
    assert cfg.min_resources == Resources(cpu=0.1, ram=1024)
    assert cfg.max_resources == Resources(cpu=16.0, ram=17179869184)
    assert cfg.granularities == Resources(cpu=0.1, ram=1048576)
    assert cfg.lock_step is True


def test_a_full_worker_file_reads_the_webhook_section() -> None:
    cfg = config.loads(FULL_WORKER_FILE)
    assert cfg.label_style == "pulsar-runtime"
    assert cfg.secrets_verify == "off"
    assert cfg.allowed_audiences == ("pulsar",)
    assert cfg.require_audience is True
    assert cfg.max_expiration_seconds == 7200
    assert cfg.service_account_template == "pf-{tenant}-{namespace}-{name}"
    assert cfg.automount_service_account_token is False
    assert cfg.allowed_options == ("extraLabels", "tolerations")
    assert cfg.allowed_toleration_keys == ("dedicated",)
    assert cfg.allowed_node_selector_keys == ("disktype",)
    assert cfg.max_container_resources == {"cpu": "4", "memory": "8Gi"}
    assert cfg.enforcement == "warn"
    assert cfg.rules == {"naming/statefulset-name": "deny", "secrets/exists": "off"}
    assert cfg.server == config.ServerSettings(
        port=9443, metrics_port=9090, cert_dir="/certs", client_ca="/ca.crt", tls_min_version="1.3"
    )
    assert cfg.kube == config.KubeSettings(kubeconfig="/kubeconfig", timeout_seconds=1.5)


def test_the_config_is_frozen() -> None:
    cfg = config.loads(FULL_WORKER_FILE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.tokens_enabled = False  # type: ignore[misc]


def test_the_legacy_kubernetes_container_factory_block_is_read_like_the_docs_example() -> None:
    cfg = config.loads(LEGACY_WORKER_FILE)
    assert cfg.tokens_enabled is True
    assert (cfg.token_audience, cfg.token_expiration_seconds, cfg.ca_secret_name) == (
        "aud",
        600,
        "my-secret",
    )


def test_without_a_factory_class_the_legacy_block_is_used_wholesale() -> None:
    # as Pulsar 4.0.7's worker does (tests/pulsar-fixtures/legacy-block.json): no key-by-key
    # merge with functionRuntimeFactoryConfigs, which is then ignored
    cfg = config.loads(
        "kubernetesContainerFactory: {jobNamespace: legacy-ns, jobName: old}\n"
        "functionRuntimeFactoryConfigs: {jobName: new, customLabels: {a: b}}\n"
    )
    assert (cfg.job_namespace, cfg.job_name, dict(cfg.custom_labels)) == ("legacy-ns", "old", {})
    assert any("functionRuntimeFactoryConfigs is ignored" in n for n in cfg.notes)


def test_with_a_factory_class_the_legacy_block_is_ignored_entirely() -> None:
    cfg = config.loads(
        f"functionRuntimeFactoryClassName: {config.KUBERNETES_RUNTIME_FACTORY}\n"
        "kubernetesContainerFactory: {jobNamespace: legacy-ns, customLabels: {x: y}}\n"
        "functionRuntimeFactoryConfigs: {jobName: new}\n"
    )
    assert (cfg.job_namespace, cfg.job_name, dict(cfg.custom_labels)) == (None, "new", {})
    assert any("kubernetesContainerFactory is ignored" in n for n in cfg.notes)


@pytest.mark.parametrize(
    "text",
    [pytest.param("", id="empty-file"), pytest.param("# only a comment\n", id="comment-only")],
)
def test_an_empty_file_gives_the_built_in_defaults(text: str) -> None:
    assert config.loads(text) == config.default_config() == Config()


def test_the_built_in_defaults_turn_on_naming_secrets_and_the_customizer_but_not_tokens() -> None:
    cfg = config.default_config()
    assert (cfg.secrets_enabled, cfg.customizer_enabled, cfg.tokens_enabled) == (True, True, False)
    assert cfg.token_secret_auth is False
    assert cfg.label_style == "documented"
    assert cfg.enforcement == "deny"
    assert cfg.secrets_verify == "warn"
    assert cfg.token_expiration_seconds == 3600
    assert cfg.max_expiration_seconds == 86400
    assert cfg.cluster_options == config.RuntimeOptions()
    assert cfg.server == config.ServerSettings(port=8443, metrics_port=8080, cert_dir="certs")
    assert cfg.kube == config.KubeSettings(kubeconfig=None, timeout_seconds=2.0)
    assert (cfg.min_resources, cfg.max_resources, cfg.granularities) == (None, None, None)


def test_a_file_with_only_a_webhook_section_keeps_the_built_in_feature_defaults() -> None:
    cfg = config.loads("webhook:\n  naming:\n    labelStyle: pulsar-runtime\n")
    assert (cfg.secrets_enabled, cfg.customizer_enabled, cfg.tokens_enabled) == (True, True, False)
    assert cfg.label_style == "pulsar-runtime"


@pytest.mark.parametrize(
    ("doc", "secrets", "tokens", "token_secret", "customizer"),
    [
        pytest.param(
            {"functionRuntimeFactoryConfigs": {}}, False, False, False, False, id="no-classes"
        ),
        pytest.param(
            {"secretsProviderConfiguratorClassName": K8S_SECRETS},
            True,
            False,
            False,
            False,
            id="secrets",
        ),
        pytest.param(
            {"secretsProviderConfiguratorClassName": config.DEFAULT_SECRETS_CONFIGURATOR},
            False,
            False,
            False,
            False,
            id="default-secrets-configurator",
        ),
        pytest.param(
            {"authenticationEnabled": True, "functionAuthProviderClassName": SA},
            False,
            True,
            False,
            False,
            id="sa-token",
        ),
        pytest.param(
            {"authenticationEnabled": "true", "functionAuthProviderClassName": SECRETS_TOKEN},
            False,
            False,
            True,
            False,
            id="token-secret",
        ),
        pytest.param(
            {"functionAuthProviderClassName": SA},
            False,
            False,
            False,
            False,
            id="sa-token-auth-off",
        ),
        pytest.param(
            {"authenticationEnabled": False, "functionAuthProviderClassName": SECRETS_TOKEN},
            False,
            False,
            False,
            False,
            id="token-secret-auth-off",
        ),
        pytest.param(
            {
                "authenticationEnabled": True,
                "functionRuntimeFactoryClassName": config.KUBERNETES_RUNTIME_FACTORY,
                "functionRuntimeFactoryConfigs": {},
            },
            False,
            False,
            True,
            False,
            id="kubernetes-runtime-defaults-to-the-token-secret-provider",
        ),
        pytest.param(
            {"runtimeCustomizerClassName": BASIC}, False, False, False, True, id="customizer"
        ),
        pytest.param(
            {"runtimeCustomizerClassName": "", "secretsProviderConfiguratorClassName": ""},
            False,
            False,
            False,
            False,
            id="blank-class-names",
        ),
        pytest.param(
            {"runtimeCustomizerConfig": {"extraLabels": {"a": "b"}}},
            False,
            False,
            False,
            False,
            id="customizer-config-without-class",
        ),
        pytest.param(
            {"functionRuntimeFactoryConfigs": {}, "webhook": {"customizer": {"enabled": True}}},
            False,
            False,
            False,
            True,
            id="customizer-forced-on",
        ),
        pytest.param(
            {"runtimeCustomizerClassName": BASIC, "webhook": {"customizer": {"enabled": False}}},
            False,
            False,
            False,
            False,
            id="customizer-forced-off",
        ),
    ],
)
def test_features_follow_the_worker_class_names(
    doc: dict[str, object], secrets: bool, tokens: bool, token_secret: bool, customizer: bool
) -> None:
    cfg = config.from_mapping(doc)
    assert (
        cfg.secrets_enabled,
        cfg.tokens_enabled,
        cfg.token_secret_auth,
        cfg.customizer_enabled,
    ) == (secrets, tokens, token_secret, customizer)


# ---------------------------------------------------------------------------------------------
# token expiration: Pulsar's traps fixed


SA_ON = f"authenticationEnabled: true\nfunctionAuthProviderClassName: {SA}\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('"600"', 600, id="numeric-string-as-in-pulsar-docs"),
        pytest.param('"+900"', 900, id="signed-string-long-parselong-accepts"),
        pytest.param("86400", None, id="unquoted-integer-is-refused"),
        pytest.param("3000000000", 3000000000, id="beyond-int-yaml-gives-a-long"),
        pytest.param("null", 3600, id="null-means-default"),
    ],
)
def test_the_token_expiration_is_read_as_the_workers_auth_provider_reads_it(
    value: str, expected: int | None
) -> None:
    text = (
        SA_ON + "functionRuntimeFactoryConfigs:\n"
        "  kubernetesFunctionAuthProviderConfig:\n"
        f"    serviceAccountTokenExpirationSeconds: {value}\n"
        "webhook: {tokens: {maxExpirationSeconds: 4000000000}}\n"
    )
    if expected is None:
        assert "Invalid value for serviceAccountTokenExpirationSeconds. Expected a long." in (
            _error(text)
        )
    else:
        assert config.loads(text).token_expiration_seconds == expected


@pytest.mark.parametrize("value", ['" 900 "', '""', "600", "true"])
def test_an_expiration_the_worker_refuses_is_refused_with_its_message(value: str) -> None:
    message = _error(
        SA_ON + "functionRuntimeFactoryConfigs:\n"
        "  kubernetesFunctionAuthProviderConfig:\n"
        f"    serviceAccountTokenExpirationSeconds: {value}\n"
    )
    assert (
        ": functionRuntimeFactoryConfigs.kubernetesFunctionAuthProviderConfig."
        "serviceAccountTokenExpirationSeconds: Invalid value for "
        "serviceAccountTokenExpirationSeconds. Expected a long." in message
    )


def test_with_auth_off_an_unquoted_expiration_is_read_and_noted() -> None:
    cfg = config.loads(
        f"functionAuthProviderClassName: {SA}\nfunctionRuntimeFactoryConfigs:\n"
        "  kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: 900}\n"
    )
    assert not cfg.tokens_enabled
    assert cfg.token_expiration_seconds == 900
    assert any("Expected a long" in n for n in cfg.notes)


def test_the_token_expiration_defaults_to_3600_not_pulsars_0() -> None:
    cfg = config.loads(SA_ON)
    assert cfg.tokens_enabled
    assert cfg.token_expiration_seconds == 3600


def test_quantities_as_yaml_numbers_in_the_customizer_config_are_refused_as_by_the_worker() -> None:
    message = _error(
        f"runtimeCustomizerClassName: {BASIC}\n"
        "runtimeCustomizerConfig: {resourceRequirements: {limits: {cpu: 2}}}\n"
    )
    assert ": runtimeCustomizerConfig.resourceRequirements.limits.cpu: 2 is a YAML number" in (
        message
    )
    assert "io.kubernetes.client.custom.Quantity" in message
    # without the customizer class the worker never reads the block
    assert config.loads("runtimeCustomizerConfig: {resourceRequirements: {limits: {cpu: 2}}}")


def test_values_the_worker_accepts_are_accepted() -> None:
    cfg = config.loads(
        f"runtimeCustomizerClassName: {BASIC}\n"
        "runtimeCustomizerConfig: {extraLabels: {tier: ~, team: data}}\n"
        'functionInstanceResourceChangeInLockStep: "true"\n'
    )
    assert dict(cfg.cluster_options.extra_labels) == {"team": "data"}  # `~`: no such label
    assert cfg.lock_step is True


# ---------------------------------------------------------------------------------------------
# errors: one line naming the key

AUTH = "functionRuntimeFactoryConfigs.kubernetesFunctionAuthProviderConfig"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        pytest.param(
            "functionRuntimeFactoryConfigs: 5",
            "functionRuntimeFactoryConfigs",
            "expected a mapping, got int",
            id="factory-not-a-mapping",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {jobNamespace: 5}",
            "functionRuntimeFactoryConfigs.jobNamespace",
            "expected a string, got int",
            id="job-namespace-int",
        ),
        pytest.param(
            "kubernetesContainerFactory: {jobName: [a]}",
            "kubernetesContainerFactory.jobName",
            "expected a string, got list",
            id="legacy-job-name-list",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {customLabels: {a: [1]}}",
            "functionRuntimeFactoryConfigs.customLabels.a",
            "expected a string",
            id="custom-label-list",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: 599}}",
            f"{AUTH}.serviceAccountTokenExpirationSeconds",
            "599 is under 600",
            id="expiration-under-600",
        ),
        pytest.param(
            'functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: "10m"}}',
            f"{AUTH}.serviceAccountTokenExpirationSeconds",
            "expected a whole number",
            id="expiration-not-a-number",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: 600.5}}",
            f"{AUTH}.serviceAccountTokenExpirationSeconds",
            "expected a whole number",
            id="expiration-float",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: true}}",
            f"{AUTH}.serviceAccountTokenExpirationSeconds",
            "expected a whole number",
            id="expiration-bool",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: 90000}}",
            "serviceAccountTokenExpirationSeconds",
            "above webhook.tokens.maxExpirationSeconds (86400)",
            id="expiration-above-maximum",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenAudience: 5}}",
            f"{AUTH}.serviceAccountTokenAudience",
            "Invalid value for serviceAccountTokenAudience. Expected a string.",
            id="audience-int",
        ),
        pytest.param(
            "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {brokerClientTrustCertsSecretName: [a]}}",
            f"{AUTH}.brokerClientTrustCertsSecretName",
            "Invalid value for brokerClientTrustCertsSecretName. Expected a string.",
            id="ca-secret-list",
        ),
        pytest.param(
            "functionInstanceMinResources: {cpu: lots}",
            "functionInstanceMinResources.cpu",
            "expected a number, got 'lots'",
            id="min-cpu",
        ),
        pytest.param(
            "functionInstanceMaxResources: {ram: 1.5}",
            "functionInstanceMaxResources.ram",
            "expected a whole number",
            id="max-ram-float",
        ),
        pytest.param(
            "functionInstanceResourceChangeInLockStep: sometimes",
            "functionInstanceResourceChangeInLockStep",
            "expected true or false",
            id="lock-step",
        ),
        pytest.param(
            "runtimeCustomizerConfig: [a]",
            "runtimeCustomizerConfig",
            "expected a mapping, got list",
            id="customizer-config-list",
        ),
        pytest.param(
            "runtimeCustomizerConfig: {tolerations: {key: a}}",
            "runtimeCustomizerConfig.tolerations",
            "expected a list of tolerations",
            id="tolerations-mapping",
        ),
        pytest.param(
            "runtimeCustomizerConfig: {tolerations: [{key: a, tolerationSeconds: soon}]}",
            "runtimeCustomizerConfig.tolerations[0].tolerationSeconds",
            "expected a whole number",
            id="toleration-seconds",
        ),
        pytest.param(
            "runtimeCustomizerConfig: {resourceRequirements: {limits: {cpu: lots}}}",
            "runtimeCustomizerConfig.resourceRequirements.limits.cpu",
            "'lots' is not a quantity",
            id="customizer-quantity",
        ),
        pytest.param(
            "runtimeCustomizerConfig: {extraLabels: {a: {b: c}}}",
            "runtimeCustomizerConfig.extraLabels.a",
            "expected a string",
            id="extra-label-mapping",
        ),
        pytest.param(
            "webhook: 5", "webhook", "expected a mapping, got int", id="webhook-not-a-mapping"
        ),
        pytest.param(
            "webhook: {namin: {}}",
            "webhook.namin",
            "unknown key (known: naming,",
            id="typo-section",
        ),
        pytest.param(
            "webhook: {tokens: {maxExpiration: 600}}",
            "webhook.tokens.maxExpiration",
            "unknown key",
            id="typo-in-tokens",
        ),
        pytest.param(
            "webhook: {naming: {labelStyle: strict}}",
            "webhook.naming.labelStyle",
            "expected one of documented, pulsar-runtime, got 'strict'",
            id="label-style",
        ),
        pytest.param(
            "webhook: {secrets: {verify: sometimes}}",
            "webhook.secrets.verify",
            "expected one of off, warn, deny",
            id="secrets-verify",
        ),
        pytest.param(
            "webhook: {policy: {rules: {naming/nope: deny}}}",
            "webhook.policy.rules.naming/nope",
            "unknown rule (rules: command/uneditable, customizer/node-selector,",
            id="unknown-rule",
        ),
        pytest.param(
            "webhook: {policy: {rules: {secrets/entry: block}}}",
            "webhook.policy.rules.secrets/entry",
            "expected one of deny, warn, audit, off, got 'block'",
            id="unknown-action",
        ),
        pytest.param(
            "webhook: {policy: {enforcement: strict}}",
            "webhook.policy.enforcement",
            "expected one of deny, warn, audit",
            id="enforcement",
        ),
        pytest.param(
            "webhook: {tokens: {maxExpirationSeconds: 300}}",
            "webhook.tokens.maxExpirationSeconds",
            "300 is under 600",
            id="max-expiration-under-600",
        ),
        pytest.param(
            "webhook: {tokens: {requireAudience: maybe}}",
            "webhook.tokens.requireAudience",
            "expected true or false",
            id="require-audience",
        ),
        pytest.param(
            "webhook: {tokens: {allowedAudiences: pulsar}}",
            "webhook.tokens.allowedAudiences",
            "expected a list of strings",
            id="audiences-not-a-list",
        ),
        pytest.param(
            'webhook: {tokens: {serviceAccountName: "pf-{team}"}}',
            "webhook.tokens.serviceAccountName",
            "bad template",
            id="template-unknown-field",
        ),
        pytest.param(
            "webhook: {customizer: {enabled: maybe}}",
            "webhook.customizer.enabled",
            "expected true or false",
            id="customizer-enabled",
        ),
        pytest.param(
            "webhook: {customizer: {allowedOptions: [extraLabel]}}",
            "webhook.customizer.allowedOptions",
            "unknown option 'extraLabel' (options: jobName,",
            id="allowed-option-typo",
        ),
        pytest.param(
            "webhook: {customizer: {maxResources: {cpu: lots}}}",
            "webhook.customizer.maxResources.cpu",
            "'lots' is not a quantity",
            id="max-resources",
        ),
        pytest.param(
            "webhook: {server: {port: 70000}}",
            "webhook.server.port",
            "70000 is not a port number",
            id="port",
        ),
        pytest.param(
            "webhook: {server: {tlsMinVersion: 1.1}}",
            "webhook.server.tlsMinVersion",
            "expected one of 1.2, 1.3",
            id="tls-min-version",
        ),
        pytest.param(
            "webhook: {kube: {timeoutSeconds: 0}}",
            "webhook.kube.timeoutSeconds",
            "is not in (0, 30]",
            id="timeout",
        ),
        pytest.param(
            "webhook: {server: {connections: {maxConnections: 0}}}",
            "webhook.server.connections.maxConnections",
            "0 is not in [1, 100000]",
            id="max-connections",
        ),
        pytest.param(
            "webhook: {server: {limits: {idleTimeoutSeconds: 0}}}",
            "webhook.server.limits.idleTimeoutSeconds",
            "0.0 is not in [0.1, 3600]",
            id="old-name-keeps-its-path",
        ),
        pytest.param(
            "webhook: {server: {connections: {maxBodyBytes: 1048576, maxBodyBytesInFlight: 65536}}}",
            "webhook.server.connections.maxBodyBytesInFlight",
            "65536 is under maxBodyBytes (1048576)",
            id="in-flight-under-body",
        ),
        pytest.param(
            "webhook: {server: {connections: {maxHeaderBytes: 10}, limits: {}}}",
            "webhook.server.limits",
            "give connections only (limits is its old name)",
            id="old-and-new-name",
        ),
        pytest.param(
            "webhook: {server: {connection: {}}}",
            "webhook.server.connection",
            "unknown key (known: port, metricsPort, certDir, clientCA, tlsMinVersion, connections)",
            id="server-unknown-key",
        ),
        pytest.param(
            "webhook: {limits: {maxSecrets: 0}}",
            "webhook.limits.maxSecrets",
            "0 is not in [1, 1000000]",
            id="input-limit",
        ),
        pytest.param(
            "webhook: {pod: {allowedHostPaths: [data]}}",
            "webhook.pod.allowedHostPaths",
            "'data' is not an absolute path",
            id="host-path-relative",
        ),
        pytest.param(
            "webhook: {server: {certDir: null}}",
            "webhook.server.certDir",
            "expected a string, got null",
            id="cert-dir-null",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(text: str, key: str, problem: str) -> None:
    message = _error(text)
    assert f": {key}: " in message
    assert problem in message


@pytest.mark.parametrize(
    ("key", "supported"),
    [
        pytest.param(
            "secretsProviderConfiguratorClassName",
            [K8S_SECRETS, config.DEFAULT_SECRETS_CONFIGURATOR],
            id="secrets-configurator",
        ),
        pytest.param("functionAuthProviderClassName", [SA, SECRETS_TOKEN], id="auth-provider"),
        pytest.param("runtimeCustomizerClassName", [BASIC], id="customizer"),
        pytest.param(
            "functionRuntimeFactoryClassName",
            [config.KUBERNETES_RUNTIME_FACTORY],
            id="runtime-factory",
        ),
    ],
)
def test_an_unknown_class_name_is_an_error_listing_the_supported_classes(
    key: str, supported: list[str]
) -> None:
    message = _error(f"{key}: com.example.MyClass")
    assert f": {key}: unsupported class 'com.example.MyClass'" in message
    for name in supported:
        assert name in message


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        pytest.param("a: [1, 2\n", "line 2 column 1", "expected ',' or ']'", id="unclosed-list"),
        pytest.param(
            "a: b: c\n", "line 1 column 5", "mapping values are not allowed here", id="colon"
        ),
        pytest.param(
            "webhook:\n  naming:\n labelStyle: x\n",
            "line 3 column 2",
            "expected <block end>",
            id="bad-indent",
        ),
        pytest.param("a: 'open\n", "line 2 column 1", "found unexpected end of stream", id="quote"),
    ],
)
def test_bad_yaml_is_one_line_with_line_and_column(text: str, where: str, problem: str) -> None:
    message = _error(text)
    assert message.startswith(f"functions_worker.yml: {where}: ")
    assert problem in message


@pytest.mark.parametrize(
    "text",
    [pytest.param("- a\n- b\n", id="list"), pytest.param("just text\n", id="scalar")],
)
def test_a_document_that_is_not_a_mapping_is_an_error(text: str) -> None:
    assert "expected a mapping at the top" in _error(text)


def test_cross_checks_name_the_offending_key() -> None:
    audience = _error(
        SA_ON + ""
        "functionRuntimeFactoryConfigs: {kubernetesFunctionAuthProviderConfig: {serviceAccountTokenAudience: other}}\n"
        "webhook: {tokens: {allowedAudiences: [pulsar]}}\n"
    )
    assert ": serviceAccountTokenAudience: 'other' is not in webhook.tokens.allowedAudiences" in (
        audience
    )
    required = _error(SA_ON + "webhook: {tokens: {requireAudience: true}}\n")
    assert ": serviceAccountTokenAudience: must be set" in required


def test_an_error_in_the_legacy_block_names_the_legacy_block_when_it_is_used() -> None:
    message = _error(
        "kubernetesContainerFactory: {jobNamespace: 5}\nfunctionRuntimeFactoryConfigs: {jobName: x}\n"
    )
    assert ": kubernetesContainerFactory.jobNamespace: " in message


def test_a_non_ascii_digit_string_is_a_config_error_not_a_crash() -> None:
    message = _error('webhook: {tokens: {maxExpirationSeconds: "²"}}')
    assert "webhook.tokens.maxExpirationSeconds" in message


def test_a_nan_quantity_is_a_config_error_not_a_crash() -> None:
    message = _error("runtimeCustomizerConfig: {resourceRequirements: {limits: {cpu: .nan}}}")
    assert "runtimeCustomizerConfig.resourceRequirements.limits.cpu" in message


def test_an_exa_quantity_in_the_customizer_config_is_accepted() -> None:
    cfg = config.loads("runtimeCustomizerConfig: {resourceRequirements: {limits: {memory: 1E}}}")
    assert quantity.parse(cfg.cluster_options.resource_requirements["limits"]["memory"]) == 10**18


def test_the_config_error_of_from_mapping_has_no_source_prefix() -> None:
    with pytest.raises(ConfigError, match=r"^webhook\.naming: expected a mapping, got int$"):
        config.from_mapping({"webhook": {"naming": 5}})


def test_unknown_worker_keys_are_ignored_but_unknown_customizer_options_are_not_fatal() -> None:
    cfg = config.loads(
        "someFutureWorkerKey: {a: 1}\n"
        "functionRuntimeFactoryConfigs: {someFutureFactoryKey: 1}\n"
        "runtimeCustomizerConfig: {someFutureOption: 1, extractLabels: {team: data}}\n"
    )
    assert cfg.cluster_options.extra_labels == {"team": "data"}


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        pytest.param("off", "off", id="bare-off-read-as-false"),
        pytest.param('"off"', "off", id="quoted-off"),
        pytest.param("deny", "deny", id="deny"),
    ],
)
def test_a_bare_yaml_off_is_read_as_off(yaml_value: str, expected: str) -> None:
    cfg = config.loads(
        f"webhook: {{secrets: {{verify: {yaml_value}}}, policy: {{rules: {{naming/label-key: {yaml_value}}}}}}}\n"
    )
    assert cfg.secrets_verify == expected
    assert cfg.rules == {"naming/label-key": expected}


# ---------------------------------------------------------------------------------------------
# Config.action precedence: the rule's own setting, then secrets.verify (secrets/exists), then
# the global enforcement


@pytest.mark.parametrize(
    ("webhook", "rule", "action"),
    [
        pytest.param({}, "naming/label-value", "deny", id="default-enforcement"),
        pytest.param({}, "secrets/exists", "warn", id="default-secrets-verify"),
        pytest.param(
            {"policy": {"enforcement": "audit"}},
            "tokens/audience",
            "audit",
            id="global-enforcement",
        ),
        pytest.param(
            {"policy": {"enforcement": "audit"}},
            "secrets/exists",
            "warn",
            id="secrets-exists-follows-verify-not-enforcement",
        ),
        pytest.param({"secrets": {"verify": "deny"}}, "secrets/exists", "deny", id="verify-deny"),
        pytest.param(
            {"secrets": {"verify": "deny"}, "policy": {"rules": {"secrets/exists": "audit"}}},
            "secrets/exists",
            "audit",
            id="rule-beats-verify",
        ),
        pytest.param(
            {"policy": {"enforcement": "warn", "rules": {"naming/statefulset-name": "deny"}}},
            "naming/statefulset-name",
            "deny",
            id="rule-beats-enforcement",
        ),
        pytest.param(
            {"policy": {"enforcement": "warn", "rules": {"naming/statefulset-name": "deny"}}},
            "naming/service-name",
            "warn",
            id="other-rules-keep-enforcement",
        ),
        pytest.param(
            {"policy": {"rules": {"tokens/expiration": "off"}}},
            "tokens/expiration",
            "off",
            id="rule-off",
        ),
    ],
)
def test_the_action_of_a_rule_follows_the_precedence(
    webhook: dict[str, object], rule: str, action: str
) -> None:
    assert config.from_mapping({"webhook": webhook}).action(rule) == action


def test_every_rule_has_an_action() -> None:
    cfg = config.default_config()
    assert {cfg.action(rule.id) for rule in rules.declared()} <= set(rules.ACTIONS)


# ---------------------------------------------------------------------------------------------
# the webhook: section is declared once (config.WEBHOOK_KEYS)


def test_the_old_name_of_the_connection_limits_is_read_with_a_note() -> None:
    old = config.loads("webhook: {server: {limits: {maxConnections: 7}}}")
    new = config.loads("webhook: {server: {connections: {maxConnections: 7}}}")
    assert old.server == new.server and old.server.limits.max_connections == 7
    assert new.notes == ()
    assert old.notes == (
        "webhook.server.limits is deprecated: write it as webhook.server.connections (same keys)",
    )


def test_null_and_auto_leave_a_setting_as_it_is() -> None:
    worker = f"runtimeCustomizerClassName: {BASIC}\n"
    cfg = config.loads(
        worker + "webhook: {customizer: {enabled: auto}, tokens: {automountServiceAccountToken: ~}}"
    )
    assert cfg.customizer_enabled is True
    assert cfg.automount_service_account_token is None
    assert (
        config.loads(worker + "webhook: {customizer: {enabled: false}}").customizer_enabled is False
    )


def test_every_declared_key_sets_its_field() -> None:
    """Each key changes the field it names, and only that one."""
    values: dict[str, object] = {
        "naming.labelStyle": "pulsar-runtime",
        "secrets.verify": "deny",
        "tokens.allowedAudiences": ["a"],
        "tokens.requireAudience": True,
        "tokens.maxExpirationSeconds": 7200,
        "tokens.serviceAccountName": "pf-{name}",
        "tokens.automountServiceAccountToken": False,
        "customizer.enabled": False,
        "customizer.allowedOptions": ["jobName"],
        "customizer.allowedTolerationKeys": ["k"],
        "customizer.allowedNodeSelectorKeys": ["n"],
        "customizer.maxResources": {"cpu": "4"},
        "policy.enforcement": "warn",
        "policy.rules": {"pod/labels": "off"},
        "pod.deniedLabelKeys": ["x"],
        "pod.deniedAnnotationKeys": ["y"],
        "pod.allowedHostPaths": ["/data"],
        "limits.maxJsonDepth": 9,
        "limits.maxNumberDigits": 21,
        "limits.maxSecrets": 2,
        "limits.maxCommandLength": 2048,
        "server.port": 1,
        "server.metricsPort": 2,
        "server.certDir": "/c",
        "server.clientCA": "/ca",
        "server.tlsMinVersion": "1.3",
        "server.connections.maxConnections": 3,
        "server.connections.handshakeTimeoutSeconds": 1,
        "server.connections.headerTimeoutSeconds": 2,
        "server.connections.bodyTimeoutSeconds": 3,
        "server.connections.idleTimeoutSeconds": 4,
        "server.connections.maxHeaderBytes": 2048,
        "server.connections.maxBodyBytes": 65536,
        "server.connections.maxBodyBytesInFlight": 64 * 1024**2,
        "kube.kubeconfig": "/k",
        "kube.timeoutSeconds": 3,
    }
    assert list(values) == [key.name for key in config.WEBHOOK_KEYS]
    base = config.default_config()

    def field(cfg: object, dotted: str) -> object:
        for part in dotted.split("."):
            cfg = getattr(cfg, part)
        return cfg

    for key in config.WEBHOOK_KEYS:
        *sections, last = key.name.split(".")
        doc: dict[str, object] = {last: values[key.name]}
        for section in reversed(sections):
            doc = {section: doc}
        cfg = config.from_mapping({"webhook": doc})
        assert field(cfg, key.field) != field(base, key.field), key.name
        others = [k.field for k in config.WEBHOOK_KEYS if k is not key]
        assert [field(cfg, f) for f in others] == [field(base, f) for f in others], key.name


def test_the_readme_lists_every_key_of_the_webhook_section_in_order() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("The `webhook:` section", 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\| `([^`]+)` \|", table, re.M)
    declared: list[str] = []
    for key in config.WEBHOOK_KEYS:
        name = re.sub(r"^server\.connections\..*", "server.connections.*", key.name)
        if name not in declared:
            declared.append(name)
    assert listed == declared
    limits = readme.split("### Limits and timeouts", 1)[1].split("\n#", 1)[0]
    connection_keys = [
        key.name.rsplit(".", 1)[1]
        for key in config.WEBHOOK_KEYS
        if key.name.startswith("server.connections.")
    ]
    assert re.findall(r"^\| `([^`]+)` \|", limits, re.M) == connection_keys
