package tailor.peer;

import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;

/**
 * One customer's state: bench/peer.yaml's five features and its rule,
 * computed as tailord computes them (README.md "Features", "Triggers"):
 *   events        count
 *   purchases     count,  where type == "purchase"
 *   spend_total   sum of amount, where type == "purchase" (0 before any)
 *   biggest_line  max of amount (no field until an amount was seen)
 *   last_seen     the largest ts
 *   regular       when type == "purchase", if purchases >= 20, cooldown 1d
 *                 in event time (state "fired;last_fired;last_cond", as
 *                 tailord's _r:regular field)
 * A null amount does not count for sum and max.  Sums saturate at
 * +-Double.MAX_VALUE, as tailord's do.
 */
final class Vector {
    static final String RULE = "regular";
    static final long COOLDOWN_MS = 86_400_000L;
    static final long THRESHOLD = 20;
    private static final int SIZE = 8 * 6 + 3;

    long events;
    long purchases;
    double spend;
    boolean hasMax;
    double max;
    long lastSeen;
    boolean fired;
    long lastFired;
    boolean lastCond;

    /** Applies e, then evaluates the rule as of e; true when it fires. */
    boolean apply(Event e) {
        boolean purchase = "purchase".equals(e.type);
        lastSeen = events == 0 ? e.ts : Math.max(lastSeen, e.ts);
        events++;
        if (purchase) {
            purchases++;
            if (e.hasAmount) spend = saturate(spend + e.amount);
        }
        if (e.hasAmount && (!hasMax || e.amount > max)) {
            max = e.amount;
            hasMax = true;
        }
        if (!purchase) return false;
        boolean cond = purchases >= THRESHOLD;
        lastCond = cond;
        if (!cond) return false;
        if (fired && e.ts - lastFired < COOLDOWN_MS) return false;
        fired = true;
        lastFired = e.ts;
        return true;
    }

    private static double saturate(double v) {
        if (v > Double.MAX_VALUE) return Double.MAX_VALUE;
        if (v < -Double.MAX_VALUE) return -Double.MAX_VALUE;
        return v;
    }

    /** The Redis hash's fields, named and written as tailord's readable
     *  fields and rule state. */
    Map<String, String> fields() {
        Map<String, String> m = new HashMap<>(8);
        m.put("events", Long.toString(events));
        m.put("purchases", Long.toString(purchases));
        m.put("spend_total", number(spend));
        if (hasMax) m.put("biggest_line", number(max));
        m.put("last_seen", Long.toString(lastSeen));
        m.put("_r:" + RULE, ruleState());
        return m;
    }

    String ruleState() {
        return (fired ? 1 : 0) + ";" + lastFired + ";" + (lastCond ? 1 : 0);
    }

    /** tailord's tl_fmt_number: whole numbers below 1e15 as integers, else
     *  the shortest decimal of at most 15 significant digits that is exactly
     *  v, else v rounded to 15 significant digits. */
    static String number(double v) {
        if (v == 0) return "0";
        if (v == Math.floor(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        double a = Math.abs(v);
        if (a >= 1e-4 && a < 1e15) {
            double p = 1;
            for (int k = 0; k < 15; k++, p *= 10) {
                double s = a * p;
                if (s >= 1e15) break;
                double r = Math.rint(s);
                if (r / p != a) continue;
                return new BigDecimal((long) r).movePointLeft(k).multiply(
                        BigDecimal.valueOf(v < 0 ? -1 : 1)).toPlainString();
            }
        }
        return percentG15(v);
    }

    /** C's "%.15g": 15 significant digits, trailing zeros dropped, an
     *  exponent only below 1e-4 or from 1e15 on. */
    static String percentG15(double v) {
        BigDecimal d = new BigDecimal(v).round(new MathContext(15)).stripTrailingZeros();
        int exp = d.precision() - d.scale() - 1;
        if (exp >= -4 && exp < 15) return d.toPlainString();
        String digits = d.unscaledValue().abs().toString();
        StringBuilder b = new StringBuilder(v < 0 ? "-" : "").append(digits.charAt(0));
        if (digits.length() > 1) b.append('.').append(digits, 1, digits.length());
        b.append(exp < 0 ? "e-" : "e+");
        int e = Math.abs(exp);
        return b.append(e < 10 ? "0" : "").append(e).toString();
    }

    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(SIZE);
        b.putLong(events).putLong(purchases).putDouble(spend).putDouble(max)
                .putLong(lastSeen).putLong(lastFired)
                .put((byte) (hasMax ? 1 : 0)).put((byte) (fired ? 1 : 0))
                .put((byte) (lastCond ? 1 : 0));
        return b.array();
    }

    static Vector decode(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        Vector v = new Vector();
        v.events = b.getLong();
        v.purchases = b.getLong();
        v.spend = b.getDouble();
        v.max = b.getDouble();
        v.lastSeen = b.getLong();
        v.lastFired = b.getLong();
        v.hasMax = b.get() != 0;
        v.fired = b.get() != 0;
        v.lastCond = b.get() != 0;
        return v;
    }
}
