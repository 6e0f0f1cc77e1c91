package tailor.peer;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Response;

/**
 * Recomputes every customer's vector from the data file in file order (the
 * order each customer's events have in its partition) and compares the
 * Redis hash of each prefix with it: every field of Vector.fields(), numbers
 * numerically (relative 1e-12; tailord and the peer both round to 15
 * significant digits) and as text.  A missing _r:regular reads "0;0;0".
 * Prints one line per prefix; exit 1 on any mismatch.
 */
final class Verify {
    static int main(Map<String, String> opt) throws Exception {
        Map<String, Vector> want = new LinkedHashMap<>();
        long events = 0, triggers = 0;
        String data = opt.get("data");
        try (InputStream raw = new FileInputStream(data);
             InputStream in = data.endsWith(".gz") ? new GZIPInputStream(raw, 1 << 16) : raw;
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                Event e = Event.parse(line.getBytes(StandardCharsets.UTF_8));
                if (e == null) continue;
                events++;
                if (want.computeIfAbsent(e.customerId, k -> new Vector()).apply(e)) triggers++;
            }
        }
        System.out.printf("verify: recomputed %d events, %d customers, %d triggers%n",
                events, want.size(), triggers);
        String[] hp = opt.getOrDefault("redis", "127.0.0.1:6379").split(":");
        int bad = 0;
        try (Jedis redis = new Jedis(hp[0], Integer.parseInt(hp[1]))) {
            for (String prefix : opt.get("prefixes").split(",")) bad += compare(redis, prefix, want);
        }
        return bad == 0 ? 0 : 1;
    }

    private static int compare(Jedis redis, String prefix, Map<String, Vector> want) {
        Pipeline p = redis.pipelined();
        List<Response<Map<String, String>>> got = new ArrayList<>(want.size());
        for (String id : want.keySet()) got.add(p.hgetAll(prefix + "cx:{" + id + "}"));
        p.sync();
        int i = 0, missing = 0, differ = 0, textDiffer = 0, fields = 0;
        for (Map.Entry<String, Vector> w : want.entrySet()) {
            Map<String, String> have = got.get(i++).get();
            if (have.isEmpty()) {
                if (missing++ < 3) System.out.printf("  %s: no key for customer %s%n", prefix, w.getKey());
                continue;
            }
            for (Map.Entry<String, String> f : w.getValue().fields().entrySet()) {
                fields++;
                String h = have.get(f.getKey());
                if (h == null && f.getKey().startsWith("_r:")) h = "0;0;0";
                if (f.getValue().equals(h)) continue;
                if (h != null && close(f.getValue(), h)) {
                    if (textDiffer++ < 3)
                        System.out.printf("  %s: customer %s field %s: want %s, have %s (equal to 1e-12)%n",
                                prefix, w.getKey(), f.getKey(), f.getValue(), h);
                    continue;
                }
                if (differ++ < 5)
                    System.out.printf("  %s: customer %s field %s: want %s, have %s%n", prefix,
                            w.getKey(), f.getKey(), f.getValue(), h);
            }
        }
        System.out.printf("verify %s: %d customers, %d fields compared: %d missing customers, "
                        + "%d fields differ, %d equal numerically but not as text%n",
                prefix, want.size(), fields, missing, differ, textDiffer);
        return missing + differ;
    }

    private static boolean close(String a, String b) {
        try {
            double x = Double.parseDouble(a), y = Double.parseDouble(b);
            return x == y || Math.abs(x - y) <= 1e-12 * Math.max(Math.abs(x), Math.abs(y));
        } catch (NumberFormatException e) {
            return false;
        }
    }
}
