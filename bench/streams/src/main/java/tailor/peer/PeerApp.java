package tailor.peer;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.Stores;

/**
 * bench/peer.sh's Kafka Streams peer of tailord.
 *   run --bootstrap B --guarantee alos|eos --app-id ID --events N ...   (PeerConfig)
 *   topics --bootstrap B --partitions N TOPIC...
 *   verify --redis H:P --data FILE.jsonl[.gz] --prefixes P1,P2,...   (Verify)
 * run prints one line: "peer: guarantee=... events=... seconds=...
 * events_per_s=... cpu_s=... cpu_from_first_s=... triggers=...": seconds
 * and the rate from the first record processed to the tasks closed (their
 * last flush and commit), CPU of the whole JVM, and from the first record.
 */
public final class PeerApp {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) usage();
        try {
            switch (args[0]) {
                case "run" -> System.exit(run(PeerConfig.parse(args, 1)));
                case "topics" -> topics(args);
                case "verify" -> System.exit(Verify.main(PeerConfig.pairs(args, 1)));
                default -> usage();
            }
        } catch (IllegalArgumentException e) {
            System.err.println("peer: " + e.getMessage());
            System.exit(2);
        }
    }

    private static void usage() {
        System.err.println("usage: PeerApp run|topics|verify --name value ... (see PeerApp.java)");
        System.exit(2);
    }

    private static void topics(String[] args) throws Exception {
        String bootstrap = null;
        int partitions = 1;
        List<NewTopic> topics = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap" -> bootstrap = args[++i];
                case "--partitions" -> partitions = Integer.parseInt(args[++i]);
                default -> topics.add(new NewTopic(args[i], partitions, (short) 1));
            }
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(topics).all().get();
        }
    }

    static double cpuSeconds() {
        return ((com.sun.management.OperatingSystemMXBean)
                ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime() / 1e9;
    }

    private static int run(PeerConfig cfg) throws Exception {
        AtomicLong processed = new AtomicLong(), triggers = new AtomicLong(), firstMs = new AtomicLong(),
                firstCpu = new AtomicLong();
        KeyValueBytesStoreSupplier supplier = cfg.store.equals("memory")
                ? Stores.inMemoryKeyValueStore(VectorProcessor.STORE)
                : Stores.persistentKeyValueStore(VectorProcessor.STORE);
        Topology t = new Topology();
        t.addSource("events", Serdes.ByteArray().deserializer(), Serdes.ByteArray().deserializer(),
                cfg.input);
        t.addProcessor("vectors", () -> new VectorProcessor(cfg, processed, triggers, firstMs, firstCpu),
                "events");
        t.addStateStore(Stores.keyValueStoreBuilder(supplier, Serdes.String(), Serdes.ByteArray()),
                "vectors");
        t.addSink("triggers", cfg.output, Serdes.ByteArray().serializer(),
                Serdes.ByteArray().serializer(), "vectors");

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, cfg.appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, cfg.bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, cfg.guarantee);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, cfg.threads);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, cfg.commitMs);
        p.put(StreamsConfig.STATE_DIR_CONFIG, cfg.stateDir);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        long t0 = System.currentTimeMillis();
        KafkaStreams streams = new KafkaStreams(t, p);
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("peer: stream thread failed: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        // Drained: the known number of events processed, or none for
        // idle-seconds after the first (the input is written before the run).
        long last = processed.get(), lastChange = System.currentTimeMillis();
        long deadline = t0 + cfg.timeoutSeconds * 1000L;
        int rc = 0;
        while (true) {
            Thread.sleep(50);
            long n = processed.get(), now = System.currentTimeMillis();
            if (n != last) { last = n; lastChange = now; }
            if (cfg.events > 0 && n >= cfg.events) break;
            if (n > 0 && now - lastChange > cfg.idleSeconds * 1000L) {
                if (cfg.events > 0) { System.err.println("peer: idle at " + n + " of " + cfg.events); rc = 1; }
                break;
            }
            if (now > deadline || streams.state() == KafkaStreams.State.ERROR
                    || streams.state() == KafkaStreams.State.NOT_RUNNING) {
                System.err.println("peer: stopped at " + n + " events, state " + streams.state());
                rc = 1;
                break;
            }
        }
        // close(): every task flushes its vectors to Redis and commits.
        streams.close(java.time.Duration.ofSeconds(60));
        long end = System.currentTimeMillis();
        double cpu = cpuSeconds();
        double secs = (end - firstMs.get()) / 1000.0;
        System.out.printf("peer: guarantee=%s events=%d seconds=%.2f events_per_s=%.0f cpu_s=%.2f "
                        + "cpu_from_first_s=%.2f triggers=%d start_to_end_s=%.2f%n",
                cfg.guarantee, processed.get(), secs, processed.get() / secs, cpu,
                cpu - Double.longBitsToDouble(firstCpu.get()), triggers.get(), (end - t0) / 1000.0);
        return rc;
    }
}
