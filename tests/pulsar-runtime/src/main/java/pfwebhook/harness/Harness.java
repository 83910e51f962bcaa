package pfwebhook.harness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.ApiException;
import io.kubernetes.client.openapi.apis.AppsV1Api;
import io.kubernetes.client.openapi.apis.CoreV1Api;
import java.io.File;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.commons.lang3.StringUtils;
import org.apache.pulsar.common.functions.FunctionConfig;
import org.apache.pulsar.common.util.ObjectMapperFactory;
import org.apache.pulsar.common.util.Reflections;
import org.apache.pulsar.functions.auth.FunctionAuthProvider;
import org.apache.pulsar.functions.instance.AuthenticationConfig;
import org.apache.pulsar.functions.instance.InstanceConfig;
import org.apache.pulsar.functions.proto.Function.FunctionAuthenticationSpec;
import org.apache.pulsar.functions.proto.Function.FunctionDetails;
import org.apache.pulsar.functions.runtime.RuntimeCustomizer;
import org.apache.pulsar.functions.runtime.RuntimeFactory;
import org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntime;
import org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory;
import org.apache.pulsar.functions.secretsproviderconfigurator.DefaultSecretsProviderConfigurator;
import org.apache.pulsar.functions.secretsproviderconfigurator.SecretsProviderConfigurator;
import org.apache.pulsar.functions.utils.FunctionConfigUtils;
import org.apache.pulsar.functions.worker.WorkerConfig;

/**
 * Runs Pulsar's own functions-worker classes (public API only) on a functions_worker.yml and a
 * function config, the way the worker wires them, and reports what the worker sent.
 *
 * <p>Usage: {@code java -jar harness.jar <render|start> <cases.json> <results.jsonl>}
 *
 * <ul>
 *   <li>{@code render}: the worker's client talks to an in-process stand-in that accepts every
 *       object; the result holds the Service and StatefulSet exactly as sent (fixtures).</li>
 *   <li>{@code start}: {@code KubernetesRuntime.start()} against the cluster named by
 *       {@code $KUBECONFIG} (the worker's own default client), so the objects go through the
 *       API server's admission chain; the result says whether start() succeeded and, if not,
 *       what the API server answered.</li>
 * </ul>
 *
 * <p>cases.json: {@code [{"id": "...", "workerConfig": "/path/functions_worker.yml",
 * "function": {FunctionConfig as the admin CLI/REST API take it}, "authData": "optional"}]}.
 * One JSON object per case is written to results.jsonl (stdout is left to Pulsar's logging).
 */
public final class Harness {

    private static final ObjectMapper JSON = new ObjectMapper();
    static final String WORKER_CLASSPATH = "/pulsar/conf:/pulsar/lib/*";
    private static final int PARALLEL = 8;

    private Harness() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3 || !(args[0].equals("render") || args[0].equals("start"))) {
            System.err.println("usage: harness <render|start> <cases.json> <results.jsonl>");
            System.exit(2);
        }
        boolean render = args[0].equals("render");
        // The instance command line carries the worker's own java.class.path when
        // functionInstanceClassPath is unset; give it the value of Pulsar's image (class loading
        // is already set up from the real one, so this changes nothing else).
        System.setProperty("java.class.path", WORKER_CLASSPATH);
        JsonNode cases = JSON.readTree(new File(args[1]));
        int failures = 0;
        // Cases are independent (each has its own factory, runtime and client); most of a
        // refused case's time is the worker's own retry sleeps, so they run side by side.
        ExecutorService pool = Executors.newFixedThreadPool(PARALLEL);
        try (CaptureServer capture = render ? new CaptureServer() : null;
             PrintStream out = new PrintStream(Files.newOutputStream(Path.of(args[2])), true,
                     StandardCharsets.UTF_8)) {
            List<Future<ObjectNode>> running = new ArrayList<>();
            for (JsonNode item : cases) {
                running.add(pool.submit(() -> runCase(item, capture)));
            }
            for (Future<ObjectNode> future : running) {
                ObjectNode result = future.get();
                out.println(JSON.writeValueAsString(result));
                if (!"ok".equals(result.path("stage").asText())) {
                    failures++;
                }
            }
        } finally {
            pool.shutdownNow();
        }
        System.err.println("harness: " + cases.size() + " case(s), " + failures + " not started");
        // gRPC channels and client threads of the started runtimes are not ours to stop.
        System.exit(0);
    }

    private static ObjectNode runCase(JsonNode item, CaptureServer capture) {
        ObjectNode result = JSON.createObjectNode();
        result.put("id", item.path("id").asText());
        Recorder recorder = new Recorder();
        String stage = "load";
        try {
            WorkerConfig workerConfig = WorkerConfig.load(item.path("workerConfig").asText());
            stage = "initialize";
            RuntimeFactory factory = initialize(workerConfig);
            if (!(factory instanceof KubernetesRuntimeFactory)) {
                throw new IllegalStateException("not a Kubernetes runtime: " + factory.getClass());
            }
            KubernetesRuntimeFactory k8s = (KubernetesRuntimeFactory) factory;
            attach(k8s, recorder, capture);
            stage = "details";
            FunctionConfig functionConfig = ObjectMapperFactory.getMapper().getObjectMapper()
                    .convertValue(item.path("function"), FunctionConfig.class);
            FunctionDetails details = FunctionConfigUtils.convert(functionConfig);
            stage = "admission";
            factory.doAdmissionChecks(details);
            stage = "create";
            InstanceConfig instanceConfig = instanceConfig(details, item.path("authData").asText(""),
                    workerConfig);
            KubernetesRuntime runtime = k8s.createContainer(instanceConfig,
                    packagePath(details), fileName(details), null, null, 30L);
            stage = "start";
            runtime.start();
            stage = "ok";
        } catch (Throwable e) {
            result.set("error", describe(e));
        }
        result.put("stage", stage);
        ArrayNode sent = result.putArray("requests");
        for (Recorder.Exchange exchange : recorder.take()) {
            ObjectNode node = sent.addObject();
            node.put("method", exchange.method());
            node.put("path", exchange.path());
            node.put("status", exchange.status());
            node.set("body", parse(exchange.requestBody()));
            node.set("response", parse(exchange.responseBody()));
            if (exchange.method().equals("POST") && exchange.status() < 300) {
                String kind = exchange.path().endsWith("/services") ? "service"
                        : exchange.path().endsWith("/statefulsets") ? "statefulset" : null;
                if (kind != null) {
                    result.set(kind, parse(exchange.requestBody()));
                }
            }
        }
        return result;
    }

    /** The worker's order: secrets configurator, auth config and provider, customizer, factory. */
    static RuntimeFactory initialize(WorkerConfig workerConfig) throws Exception {
        SecretsProviderConfigurator secrets;
        if (StringUtils.isEmpty(workerConfig.getSecretsProviderConfiguratorClassName())) {
            secrets = new DefaultSecretsProviderConfigurator();
        } else {
            secrets = (SecretsProviderConfigurator) Reflections.createInstance(
                    workerConfig.getSecretsProviderConfiguratorClassName(),
                    ClassLoader.getSystemClassLoader());
        }
        secrets.init(workerConfig.getSecretsProviderConfiguratorConfig());

        Optional<FunctionAuthProvider> authProvider = Optional.empty();
        AuthenticationConfig authConfig = null;
        if (workerConfig.isAuthenticationEnabled()) {
            authConfig = AuthenticationConfig.builder()
                    .clientAuthenticationPlugin(workerConfig.getBrokerClientAuthenticationPlugin())
                    .clientAuthenticationParameters(workerConfig.getBrokerClientAuthenticationParameters())
                    .tlsTrustCertsFilePath(workerConfig.getTlsTrustCertsFilePath())
                    .useTls(workerConfig.isUseTls())
                    .tlsAllowInsecureConnection(workerConfig.isTlsAllowInsecureConnection())
                    .tlsHostnameVerificationEnable(workerConfig.isTlsEnableHostnameVerification())
                    .build();
            if (!StringUtils.isEmpty(workerConfig.getFunctionAuthProviderClassName())) {
                authProvider = Optional.of(
                        FunctionAuthProvider.getAuthProvider(workerConfig.getFunctionAuthProviderClassName()));
            }
        }

        Optional<RuntimeCustomizer> customizer = Optional.empty();
        if (!StringUtils.isEmpty(workerConfig.getRuntimeCustomizerClassName())) {
            customizer = Optional.of(
                    RuntimeCustomizer.getRuntimeCustomizer(workerConfig.getRuntimeCustomizerClassName()));
            Map<String, Object> config = Optional.ofNullable(workerConfig.getRuntimeCustomizerConfig())
                    .orElse(Collections.emptyMap());
            customizer.get().initialize(config);
        }

        RuntimeFactory factory;
        if (!StringUtils.isEmpty(workerConfig.getFunctionRuntimeFactoryClassName())) {
            factory = RuntimeFactory.getFuntionRuntimeFactory(workerConfig.getFunctionRuntimeFactoryClassName());
        } else if (workerConfig.getKubernetesContainerFactory() != null) {
            factory = new KubernetesRuntimeFactory();
            @SuppressWarnings("unchecked")
            Map<String, Object> legacy = ObjectMapperFactory.getMapper().getObjectMapper()
                    .convertValue(workerConfig.getKubernetesContainerFactory(), Map.class);
            workerConfig.setFunctionRuntimeFactoryConfigs(legacy);
        } else {
            throw new IllegalStateException("no Kubernetes runtime factory configured");
        }
        factory.initialize(workerConfig, authConfig, secrets, null, null, authProvider, customizer);
        return factory;
    }

    /**
     * Observe the worker's client. In start mode it is a client of its own per case, built as
     * the worker builds it ({@code Config.defaultClient()}, from $KUBECONFIG): the factory's
     * default client is a global that cases running side by side would share. In render mode
     * it points at the in-process stand-in.
     */
    private static void attach(KubernetesRuntimeFactory factory, Recorder recorder, CaptureServer capture)
            throws java.io.IOException {
        ApiClient client;
        if (capture != null) {
            client = new ApiClient();
            client.setBasePath(capture.url());
        } else {
            client = io.kubernetes.client.util.Config.defaultClient();
        }
        client.setHttpClient(client.getHttpClient().newBuilder().addInterceptor(recorder).build());
        factory.setAppsClient(new AppsV1Api(client));
        factory.setCoreClient(new CoreV1Api(client));
    }

    /** As the worker's FunctionActioner fills it for an instance. */
    private static InstanceConfig instanceConfig(FunctionDetails details, String authData,
                                                 WorkerConfig workerConfig) {
        InstanceConfig config = new InstanceConfig();
        config.setFunctionDetails(details);
        config.setFunctionId("function-id");
        config.setFunctionVersion("function-version");
        config.setInstanceId(0);
        config.setMaxBufferedTuples(1024);
        config.setPort(9093);
        config.setMetricsPort(9094);
        config.setClusterName("pf-webhook-test");
        if (!authData.isEmpty()) {
            config.setFunctionAuthenticationSpec(FunctionAuthenticationSpec.newBuilder()
                    .setData(com.google.protobuf.ByteString.copyFromUtf8(authData))
                    .setProvider(StringUtils.defaultString(workerConfig.getFunctionAuthProviderClassName()))
                    .build());
        }
        config.setMaxPendingAsyncRequests(1000);
        return config;
    }

    private static String fileName(FunctionDetails details) {
        switch (details.getRuntime()) {
            case PYTHON:
                return "exclamation_function.py";
            case GO:
                return "exclamation-go";
            default:
                return "api-examples.jar";
        }
    }

    private static String packagePath(FunctionDetails details) {
        return details.getTenant() + "/" + details.getNamespace() + "/" + details.getName()
                + "/package-" + fileName(details);
    }

    private static JsonNode parse(String text) {
        if (text == null || text.isEmpty()) {
            return JSON.nullNode();
        }
        try {
            return JSON.readTree(text);
        } catch (Exception e) {
            return JSON.getNodeFactory().textNode(text);
        }
    }

    private static ObjectNode describe(Throwable error) {
        ObjectNode node = JSON.createObjectNode();
        node.put("type", error.getClass().getName());
        node.put("message", String.valueOf(error.getMessage()));
        ArrayNode causes = node.putArray("causes");
        for (Throwable cause = error.getCause(); cause != null && causes.size() < 8;
                cause = cause.getCause()) {
            ObjectNode item = causes.addObject();
            item.put("type", cause.getClass().getName());
            item.put("message", String.valueOf(cause.getMessage()));
            if (cause instanceof ApiException api) {
                item.put("code", api.getCode());
                item.put("body", api.getResponseBody());
            }
        }
        if (error instanceof ApiException api) {
            node.put("code", api.getCode());
            node.put("body", api.getResponseBody());
        }
        StringWriter trace = new StringWriter();
        error.printStackTrace(new PrintWriter(trace));
        String text = trace.toString();
        node.put("trace", text.length() > 4000 ? text.substring(0, 4000) : text);
        return node;
    }
}
