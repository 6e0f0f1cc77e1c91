package tailor.peer;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * One task's processor: per event, the customer's state from the store,
 * the features and the rule applied, the state put back and a trigger
 * forwarded when the rule fires.  The vectors changed since the last
 * punctuation (every commit interval, wall clock) go to Redis as HSETs in
 * one pipeline per task, and once more when the task closes.  The input is
 * keyed by customer_id (tailorctl produce), so a customer's events are all
 * in one partition and no repartition is needed.
 */
final class VectorProcessor implements Processor<byte[], byte[], byte[], byte[]> {
    static final String STORE = "vectors";

    private final PeerConfig cfg;
    private final AtomicLong processed;
    private final AtomicLong triggers;
    private final AtomicLong firstMs;
    private final AtomicLong firstCpu;
    private final Map<String, Vector> dirty = new HashMap<>();
    private ProcessorContext<byte[], byte[]> ctx;
    private KeyValueStore<String, byte[]> store;
    private Jedis redis;

    VectorProcessor(PeerConfig cfg, AtomicLong processed, AtomicLong triggers, AtomicLong firstMs,
                    AtomicLong firstCpu) {
        this.cfg = cfg;
        this.processed = processed;
        this.triggers = triggers;
        this.firstMs = firstMs;
        this.firstCpu = firstCpu;
    }

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
        ctx = context;
        store = context.getStateStore(STORE);
        redis = new Jedis(cfg.redisHost, cfg.redisPort);
        context.schedule(Duration.ofMillis(cfg.commitMs), PunctuationType.WALL_CLOCK_TIME,
                t -> flush());
    }

    @Override
    public void process(Record<byte[], byte[]> r) {
        if (firstMs.get() == 0 && firstMs.compareAndSet(0, System.currentTimeMillis()))
            firstCpu.set(Double.doubleToLongBits(PeerApp.cpuSeconds()));
        Event e = Event.parse(r.value());
        if (e == null) {
            processed.incrementAndGet();
            return;
        }
        byte[] old = store.get(e.customerId);
        Vector v = old == null ? new Vector() : Vector.decode(old);
        boolean fire = v.apply(e);
        store.put(e.customerId, v.encode());
        dirty.put(e.customerId, v);
        if (fire) {
            String t = "{\"rule\":\"" + Vector.RULE + "\",\"customer_id\":" + quote(e.customerId)
                    + ",\"ts\":" + e.ts + ",\"cause_event_id\":" + quote(e.eventId)
                    + ",\"purchases\":" + v.purchases + "}";
            ctx.forward(r.withValue(t.getBytes(StandardCharsets.UTF_8)));
            triggers.incrementAndGet();
        }
        processed.incrementAndGet();
    }

    private static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    private void flush() {
        if (dirty.isEmpty()) return;
        Pipeline p = redis.pipelined();
        for (Map.Entry<String, Vector> d : dirty.entrySet())
            p.hset(cfg.prefix + "cx:{" + d.getKey() + "}", d.getValue().fields());
        p.sync();
        dirty.clear();
    }

    @Override
    public void close() {
        flush();
        redis.close();
    }
}
