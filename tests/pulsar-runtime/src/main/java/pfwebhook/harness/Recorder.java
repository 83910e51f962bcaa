package pfwebhook.harness;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import okhttp3.Interceptor;
import okhttp3.Request;
import okhttp3.Response;
import okio.Buffer;

/**
 * Observes the worker's Kubernetes client: every request it sends and the answer it gets.
 * Nothing is changed on the way; this only lets the harness report what the worker sent and
 * what the API server (with our webhooks) said.
 */
final class Recorder implements Interceptor {

    /** One exchange: what was sent and what came back. */
    record Exchange(String method, String path, String requestBody, int status, String responseBody) {}

    private final List<Exchange> exchanges = new ArrayList<>();

    synchronized List<Exchange> take() {
        List<Exchange> copy = new ArrayList<>(exchanges);
        exchanges.clear();
        return copy;
    }

    @Override
    public Response intercept(Chain chain) throws IOException {
        Request request = chain.request();
        String sent = "";
        if (request.body() != null) {
            Buffer buffer = new Buffer();
            request.body().writeTo(buffer);
            sent = buffer.readUtf8();
        }
        Response response = chain.proceed(request);
        String answer = response.peekBody(4L * 1024 * 1024).string();
        synchronized (this) {
            exchanges.add(new Exchange(
                    request.method(), request.url().encodedPath(), sent, response.code(), answer));
        }
        return response;
    }
}
