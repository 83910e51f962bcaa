package pfwebhook.harness;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/**
 * A stand-in for the Kubernetes API server (what the worker's client sends is recorded on the
 * client side, by {@link Recorder}).
 *
 * <p>Every POST is answered 201 with the body it carried (what an API server without admission
 * would store, minus defaulting), so the worker's {@code start()} proceeds exactly as against a
 * real cluster that accepts the objects. Anything else is answered 404.
 */
final class CaptureServer implements AutoCloseable {

    private final HttpServer server;

    CaptureServer() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::handle);
        server.setExecutor(java.util.concurrent.Executors.newFixedThreadPool(4));
        server.start();
    }

    String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    private void handle(HttpExchange exchange) throws IOException {
        String body;
        try (InputStream in = exchange.getRequestBody()) {
            body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        String method = exchange.getRequestMethod();
        int status;
        byte[] answer;
        if ("POST".equals(method)) {
            status = 201;
            answer = body.getBytes(StandardCharsets.UTF_8);
        } else {
            status = 404;
            answer = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":404}"
                    .getBytes(StandardCharsets.UTF_8);
        }
        exchange.getResponseHeaders().add("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, answer.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(answer);
        }
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
