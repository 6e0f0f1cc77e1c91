package tailor.peer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;

/** The fields of one JSON event (README.md "Event format") that the
 *  features and the rule read; the rest is skipped. */
final class Event {
    private static final JsonFactory JSON = new JsonFactory();

    String eventId;
    String customerId;
    long ts;
    String type;
    boolean hasAmount;
    double amount;

    /** null when the bytes are not such an event (tailord would dead-letter
     *  it; the data set has none). */
    static Event parse(byte[] bytes) {
        Event e = new Event();
        boolean hasTs = false;
        try (JsonParser p = JSON.createParser(bytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) return null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                switch (name) {
                    case "event_id" -> e.eventId = p.getText();
                    case "customer_id" -> e.customerId = p.getText();
                    case "type" -> e.type = p.getText();
                    case "ts" -> { e.ts = p.getLongValue(); hasTs = true; }
                    case "amount" -> {
                        if (t != JsonToken.VALUE_NULL) {
                            e.amount = p.getDoubleValue();
                            e.hasAmount = true;
                        }
                    }
                    default -> p.skipChildren();
                }
            }
        } catch (IOException | RuntimeException ex) {
            return null;
        }
        if (e.customerId == null || e.customerId.isEmpty() || !hasTs) return null;
        return e;
    }
}
