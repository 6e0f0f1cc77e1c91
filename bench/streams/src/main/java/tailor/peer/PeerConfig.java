package tailor.peer;

import java.util.HashMap;
import java.util.Map;

/** Command-line options: --name value pairs, with defaults. */
final class PeerConfig {
    String bootstrap;
    String input = "peer.events";
    String output = "peer.triggers";
    String appId = "peer";
    String guarantee = "at_least_once";
    String redisHost = "127.0.0.1";
    int redisPort = 6379;
    String prefix = "peer:streams:";
    long events;
    int idleSeconds = 30;
    int threads = 1;
    int commitMs = 100;
    String store = "rocksdb";
    String stateDir = "/tmp/tailor-peer-state";
    int timeoutSeconds = 900;

    static Map<String, String> pairs(String[] args, int from) {
        Map<String, String> m = new HashMap<>();
        for (int i = from; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length)
                throw new IllegalArgumentException("expected --name value at '" + args[i] + "'");
            m.put(args[i].substring(2), args[i + 1]);
        }
        return m;
    }

    static PeerConfig parse(String[] args, int from) {
        PeerConfig c = new PeerConfig();
        for (Map.Entry<String, String> e : pairs(args, from).entrySet()) {
            String v = e.getValue();
            switch (e.getKey()) {
                case "bootstrap" -> c.bootstrap = v;
                case "input" -> c.input = v;
                case "output" -> c.output = v;
                case "app-id" -> c.appId = v;
                case "guarantee" -> c.guarantee = switch (v) {
                    case "alos", "at_least_once" -> "at_least_once";
                    case "eos", "exactly_once_v2" -> "exactly_once_v2";
                    default -> throw new IllegalArgumentException("--guarantee alos|eos, not " + v);
                };
                case "redis" -> {
                    int colon = v.lastIndexOf(':');
                    c.redisHost = v.substring(0, colon);
                    c.redisPort = Integer.parseInt(v.substring(colon + 1));
                }
                case "prefix" -> c.prefix = v;
                case "events" -> c.events = Long.parseLong(v);
                case "idle-seconds" -> c.idleSeconds = Integer.parseInt(v);
                case "threads" -> c.threads = Integer.parseInt(v);
                case "commit-ms" -> c.commitMs = Integer.parseInt(v);
                case "store" -> c.store = v;
                case "state-dir" -> c.stateDir = v;
                case "timeout-seconds" -> c.timeoutSeconds = Integer.parseInt(v);
                default -> throw new IllegalArgumentException("unknown option --" + e.getKey());
            }
        }
        if (c.bootstrap == null) throw new IllegalArgumentException("--bootstrap is required");
        return c;
    }
}
