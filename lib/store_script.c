/*
 * store_script — the Lua compare-and-set script that tl_store_flush runs
 * (EVALSHA) on each key, kept apart from the I/O so that its contract, the
 * ARGV layout that flush_append in store.c builds, is read in one place.
 */
#include "store_int.h"

/*
 * One conditional write of one hash, atomic because Redis runs a script to
 * completion.  One key per call keeps every call inside one Cluster slot.
 *
 *   KEYS[1]  the customer hash
 *   ARGV[1]  ttl_ms (PEXPIRE after the write when > 0)
 *   ARGV[2]  nwm, the number of watermarks
 *   ARGV[3]  ndel, the number of fields to delete
 *   ARGV[4..3+2*nwm]  field, expected  (per watermark)
 *   then     ndel field names (HDEL together: values that expired)
 *   then     field, value, field, value, ...  (HSET together), ending with
 *            the nwm pairs field, next  (per watermark, in the same order)
 *
 * Each watermark field must hold `expected` (this writer's previous flush)
 * or `next` (this very write, applied by an attempt whose reply was lost);
 * an absent field counts as "-1".  Anything else means another writer has
 * moved the watermark: return 0 and write nothing (zombie fencing) — or,
 * when the key does not exist at all, return 2 and write nothing: what this
 * writer read or wrote is gone (erased, expired, or lost by Redis itself),
 * which the caller tells apart from fencing; no other writer made it so,
 * since a writer always leaves its watermark in the hash.
 * Otherwise HDEL the deletions, HSET the pairs (the watermarks last, so
 * they win over a pair naming the same field; one HSET for both, since
 * every redis.call from Lua costs about as much as a small command),
 * PEXPIRE, and return 1.
 *
 * Watermarks are compared as decimal strings, never as numbers: Lua numbers
 * are doubles, exact only up to 2^53, while Kafka offsets are 64-bit.  Both
 * sides are written by tl_store_flush as decimal text (tl_fmt_i64), so equal
 * offsets are equal strings.
 *
 * HDEL and HSET go in chunks of 1000 arguments because unpack() is limited
 * by the Lua C stack (LUAI_MAXCSTACK, 8000 slots); 1000 is even, so no pair
 * splits.
 */
const char tl_store_script[] =
    "local key = KEYS[1]\n"
    "local nwm = tonumber(ARGV[2])\n"
    "local ndel = tonumber(ARGV[3])\n"
    "local nexts = #ARGV - 2 * nwm\n"
    "for i = 0, nwm - 1 do\n"
    "  local cur = redis.call('HGET', key, ARGV[4 + 2 * i]) or '-1'\n"
    "  if cur ~= ARGV[5 + 2 * i] and cur ~= ARGV[nexts + 2 + 2 * i] then\n"
    "    if redis.call('EXISTS', key) == 0 then return 2 end\n"
    "    return 0\n"
    "  end\n"
    "end\n"
    "local d = 4 + 2 * nwm\n"
    "for i = d, d + ndel - 1, 1000 do\n"
    "  redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 999, d + ndel - 1)))\n"
    "end\n"
    "for i = d + ndel, #ARGV, 1000 do\n"
    "  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV)))\n"
    "end\n"
    "if tonumber(ARGV[1]) > 0 then\n"
    "  redis.call('PEXPIRE', key, ARGV[1])\n"
    "end\n"
    "return 1\n";

const size_t tl_store_script_len = sizeof tl_store_script - 1;
