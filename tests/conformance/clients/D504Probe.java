// D504Probe: Apache HttpAsyncClient 4.1 (HttpCore NIO 4.4) against faultserver.
//
//   java -cp CLASSES:JARS D504Probe URL SCENARIO [URL SCENARIO ...]
//
// Each URL SCENARIO pair is a "run" with its own client and pool; the runs go at once.
// One JSON line per request on standard output:
//   {"run":0,"req":"/1","method":"GET","status":200,"ms":12}
//   {"run":0,"req":"/2","method":"GET","error":"org.apache.http.ConnectionClosedException",
//    "message":"Connection is closed","ms":3}
// "error" and "message" are the class and getMessage() of the exception the future failed
// with (ExecutionException unwrapped), as an application's log shows them.
//
// Client settings, the D504CO gateway's: a pool of 2 connections per route (2 in all),
// connectionRequestTimeout 500 ms (the wait for a lease), connectTimeout 1 s, socketTimeout 2 s
// (above the 1 s answers of pool-exhaustion.yaml, so that row measures the lease alone).
//
// Scenarios (the same in probe.go and probe.mjs):
//   get        GET /get
//   get2       GET /1, then GET /2 on the same client (keep-alive)
//   post2      POST /1, then POST /2 (body "order=1")
//   burst6     6 GETs at once, /pool-0 .. /pool-5
//   seq10      10 GETs one after another, /seq-0 .. /seq-9
//   race20     20 tries, each with a new client: GET /w-N, and GET /r-N as soon as it is answered
//   race20post the same with POSTs

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.http.HttpResponse;
import org.apache.http.client.config.RequestConfig;
import org.apache.http.client.methods.HttpGet;
import org.apache.http.client.methods.HttpPost;
import org.apache.http.client.methods.HttpUriRequest;
import org.apache.http.entity.StringEntity;
import org.apache.http.impl.nio.client.CloseableHttpAsyncClient;
import org.apache.http.impl.nio.client.HttpAsyncClients;
import org.apache.http.impl.nio.conn.PoolingNHttpClientConnectionManager;
import org.apache.http.impl.nio.reactor.DefaultConnectingIOReactor;
import org.apache.http.impl.nio.reactor.IOReactorConfig;
import org.apache.http.util.EntityUtils;

public final class D504Probe {
    static final int POOL = 2;
    static final int LEASE_TIMEOUT_MS = 500;
    static final int CONNECT_TIMEOUT_MS = 1000;
    static final int SOCKET_TIMEOUT_MS = 2000;

    public static void main(String[] args) throws Exception {
        if (args.length == 0 || args.length % 2 != 0) {
            System.err.println("usage: D504Probe URL SCENARIO [URL SCENARIO ...]");
            System.exit(2);
        }
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < args.length; i += 2) {
            final int run = i / 2;
            final String url = args[i];
            final String scenario = args[i + 1];
            Thread t = new Thread(() -> {
                try {
                    runScenario(run, url, scenario);
                } catch (Exception e) {
                    emit(run, "-", "-", null, e, 0);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        System.exit(0);
    }

    static CloseableHttpAsyncClient newClient() throws Exception {
        IOReactorConfig io = IOReactorConfig.custom()
                .setIoThreadCount(1)
                .setConnectTimeout(CONNECT_TIMEOUT_MS)
                .setSoTimeout(SOCKET_TIMEOUT_MS)
                .build();
        PoolingNHttpClientConnectionManager pool =
                new PoolingNHttpClientConnectionManager(new DefaultConnectingIOReactor(io));
        pool.setMaxTotal(POOL);
        pool.setDefaultMaxPerRoute(POOL);
        RequestConfig config = RequestConfig.custom()
                .setConnectionRequestTimeout(LEASE_TIMEOUT_MS)
                .setConnectTimeout(CONNECT_TIMEOUT_MS)
                .setSocketTimeout(SOCKET_TIMEOUT_MS)
                .build();
        CloseableHttpAsyncClient client = HttpAsyncClients.custom()
                .setConnectionManager(pool)
                .setDefaultRequestConfig(config)
                .build();
        client.start();
        return client;
    }

    static void runScenario(int run, String url, String scenario) throws Exception {
        switch (scenario) {
            case "get":
                try (CloseableHttpAsyncClient c = newClient()) {
                    send(c, run, url, "GET", "/get");
                }
                break;
            case "get2":
            case "post2":
                String method = scenario.equals("get2") ? "GET" : "POST";
                try (CloseableHttpAsyncClient c = newClient()) {
                    send(c, run, url, method, "/1");
                    send(c, run, url, method, "/2");
                }
                break;
            case "burst6":
                try (CloseableHttpAsyncClient c = newClient()) {
                    List<Thread> ts = new ArrayList<>();
                    for (int i = 0; i < 6; i++) {
                        final String path = "/pool-" + i;
                        Thread t = new Thread(() -> send(c, run, url, "GET", path));
                        t.start();
                        ts.add(t);
                    }
                    for (Thread t : ts) {
                        t.join();
                    }
                }
                break;
            case "seq10":
                try (CloseableHttpAsyncClient c = newClient()) {
                    for (int i = 0; i < 10; i++) {
                        send(c, run, url, "GET", "/seq-" + i);
                    }
                }
                break;
            case "race20":
            case "race20post":
                String m = scenario.equals("race20") ? "GET" : "POST";
                for (int i = 0; i < 20; i++) {
                    try (CloseableHttpAsyncClient c = newClient()) {
                        send(c, run, url, m, "/w-" + i);
                        send(c, run, url, m, "/r-" + i);
                    }
                }
                break;
            default:
                throw new IllegalArgumentException("unknown scenario: " + scenario);
        }
    }

    static void send(CloseableHttpAsyncClient c, int run, String url, String method, String path) {
        HttpUriRequest request;
        if (method.equals("POST")) {
            HttpPost post = new HttpPost(url + path);
            post.setEntity(new StringEntity("order=1", "UTF-8"));
            request = post;
        } else {
            request = new HttpGet(url + path);
        }
        long start = System.nanoTime();
        try {
            Future<HttpResponse> future = c.execute(request, null);
            HttpResponse response = future.get();
            EntityUtils.consume(response.getEntity());
            emit(run, method, path, response.getStatusLine().getStatusCode(), null, start);
        } catch (ExecutionException e) {
            emit(run, method, path, null, e.getCause() != null ? e.getCause() : e, start);
        } catch (Exception e) {
            emit(run, method, path, null, e, start);
        }
    }

    static synchronized void emit(int run, String method, String path, Integer status, Throwable error,
                                  long start) {
        long ms = start == 0 ? 0 : (System.nanoTime() - start) / 1_000_000;
        StringBuilder b = new StringBuilder();
        b.append("{\"run\":").append(run)
         .append(",\"req\":").append(quote(path))
         .append(",\"method\":").append(quote(method));
        if (status != null) {
            b.append(",\"status\":").append(status);
        } else {
            b.append(",\"error\":").append(quote(error.getClass().getName()))
             .append(",\"message\":").append(quote(String.valueOf(error.getMessage())));
        }
        b.append(",\"ms\":").append(ms).append('}');
        System.out.println(b);
        System.out.flush();
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\') {
                b.append('\\').append(ch);
            } else if (ch < 0x20) {
                b.append(String.format("\\u%04x", (int) ch));
            } else {
                b.append(ch);
            }
        }
        return b.append('"').toString();
    }
}
