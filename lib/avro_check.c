/*
 * avro_check — the bounds check of Avro binary data against the writer
 * schema: tl_avro_check (event.h) for any datum, tl_avro_check_input and
 * tl_avro_check_skip (event_int.h) for the event decoders.
 *
 * Avro-C trusts lengths it reads: a string length of 2^40 makes it try to
 * allocate 1 TiB before noticing the data is short (an abort under ASan), a
 * negative length wraps around, and enum indexes are stored unchecked.  So
 * before Avro-C sees a message, this walk checks every length, count and
 * index against the bytes actually present.  It allocates nothing and also
 * yields the exact size, for the trailing-bytes check.
 */
#include <inttypes.h>
#include <string.h>

#include "event_int.h"

#define SCAN_MAX_DEPTH 64

typedef struct scan {
    const unsigned char *p, *end;
    size_t budget; /* array/map elements still allowed */
    char *err;
    size_t errsz;
    /* Input events only (tl_avro_check leaves them 0): */
    size_t max_map;    /* entries of one map; 0: no limit */
    int check_text;    /* strings and map keys: valid UTF-8, no NUL */
    const char *field; /* top-level field being walked, for messages */
} scan;

/* The n bytes at s->p as event text (check_text only). */
static int scan_text(scan *s, size_t n, const char *what)
{
    const char *f = s->field ? s->field : "?";
    if (!s->check_text) return TL_OK;
    if (memchr(s->p, 0, n))
        return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                       "field '%s'%s contains a NUL byte", f, what);
    if (!tl_utf8_valid(s->p, n))
        return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                       "field '%s'%s is not valid UTF-8", f, what);
    return TL_OK;
}

static int scan_short(scan *s)
{
    return tl_errf(s->err, s->errsz, TL_ERR_DECODE, "truncated Avro data");
}

static int scan_take(scan *s, size_t n)
{
    if (n > (size_t)(s->end - s->p)) return scan_short(s);
    s->p += n;
    return TL_OK;
}

/* Zig-zag varint of at most maxbytes bytes (5 for int, 10 for long, the
 * limits Avro-C itself enforces). */
static int scan_varint(scan *s, int maxbytes, int64_t *out)
{
    uint64_t v = 0;
    /* Set on every path: gcc -O2 cannot see that tl_errf returns nonzero. */
    *out = 0;
    for (int i = 0;; i++) {
        if (i == maxbytes)
            return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                           "Avro varint longer than %d bytes", maxbytes);
        if (s->p == s->end) return scan_short(s);
        unsigned b = *s->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
    }
    *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return TL_OK;
}

static int scan_value(scan *s, avro_schema_t sch, int depth);

static int scan_blocks(scan *s, avro_schema_t items, int is_map, int depth)
{
    size_t entries = 0;
    for (;;) {
        int64_t count, size;
        int rc = scan_varint(s, 10, &count);
        if (rc) return rc;
        if (count == 0) return TL_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                               "invalid Avro block count");
            count = -count;
            if ((rc = scan_varint(s, 10, &size))) return rc;
            if (size < 0)
                return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                               "negative Avro block size");
        }
        /* Each element takes at least one byte except in arrays of null;
         * a count beyond the message size is corrupt, never a real event. */
        if ((uint64_t)count > s->budget) return scan_short(s);
        s->budget -= (size_t)count;
        /* Checked on the block counts, before any entry is looked at. */
        entries += (size_t)count;
        if (is_map && s->max_map && entries > s->max_map)
            return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                           "field '%s' has more than %zu entries",
                           s->field ? s->field : "?", s->max_map);
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                int64_t klen;
                if ((rc = scan_varint(s, 10, &klen))) return rc;
                if (klen < 0)
                    return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                                   "negative Avro string length");
                if ((uint64_t)klen > (size_t)(s->end - s->p))
                    return scan_short(s);
                if ((rc = scan_text(s, (size_t)klen, " has a key that")))
                    return rc;
                s->p += klen;
            }
            if ((rc = scan_value(s, items, depth + 1))) return rc;
        }
    }
}

static int scan_value(scan *s, avro_schema_t sch, int depth)
{
    int64_t v;
    int rc;
    if (depth > SCAN_MAX_DEPTH)
        return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                       "Avro data nested more than %d levels", SCAN_MAX_DEPTH);
    sch = tl_avro_unlink(sch);
    switch (avro_typeof(sch)) {
    case AVRO_NULL: return TL_OK;
    case AVRO_BOOLEAN: return scan_take(s, 1);
    case AVRO_INT32: return scan_varint(s, 5, &v);
    case AVRO_INT64: return scan_varint(s, 10, &v);
    case AVRO_FLOAT: return scan_take(s, 4);
    case AVRO_DOUBLE: return scan_take(s, 8);
    case AVRO_STRING:
    case AVRO_BYTES:
        if ((rc = scan_varint(s, 10, &v))) return rc;
        if (v < 0)
            return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                           "negative Avro string length");
        if ((uint64_t)v > (size_t)(s->end - s->p)) return scan_short(s);
        if (is_avro_string(sch) && (rc = scan_text(s, (size_t)v, "")))
            return rc;
        s->p += v;
        return TL_OK;
    case AVRO_FIXED: return scan_take(s, (size_t)avro_schema_fixed_size(sch));
    case AVRO_ENUM:
        if ((rc = scan_varint(s, 10, &v))) return rc;
        if (v < 0 || v >= avro_schema_enum_number_of_symbols(sch))
            return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                           "Avro enum %s: index %" PRId64 " out of range",
                           avro_schema_name(sch), v);
        return TL_OK;
    case AVRO_UNION:
        if ((rc = scan_varint(s, 10, &v))) return rc;
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(sch))
            return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                           "Avro union index %" PRId64 " out of range", v);
        return scan_value(s, avro_schema_union_branch(sch, (int)v), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(sch); i++) {
            avro_schema_t f =
                avro_schema_record_field_get_by_index(sch, (int)i);
            if (depth == 0)
                s->field = avro_schema_record_field_name(sch, (int)i);
            if ((rc = scan_value(s, f, depth + 1))) return rc;
        }
        return TL_OK;
    case AVRO_ARRAY:
        return scan_blocks(s, avro_schema_array_items(sch), 0, depth);
    case AVRO_MAP:
        return scan_blocks(s, avro_schema_map_values(sch), 1, depth);
    default:
        return tl_errf(s->err, s->errsz, TL_ERR_DECODE,
                       "unsupported Avro type in the writer schema");
    }
}

static int avro_scan(avro_schema_t schema, const void *buf, size_t len,
                     size_t max_map, int check_text, size_t *used, char *err,
                     size_t errsz)
{
    scan s = {buf, (const unsigned char *)buf + len, len, err, errsz,
              max_map, check_text, NULL};
    int rc = scan_value(&s, schema, 0);
    if (rc) return rc;
    *used = (size_t)(s.p - (const unsigned char *)buf);
    return TL_OK;
}

int tl_avro_check(struct avro_obj_t *schema, const void *buf, size_t len,
                  size_t *used, char *err, size_t errsz)
{
    return avro_scan(schema, buf, len, 0, 0, used, err, errsz);
}

int tl_avro_check_input(avro_schema_t schema, const void *buf, size_t len,
                        size_t max_map, size_t *used, char *err, size_t errsz)
{
    return avro_scan(schema, buf, len, max_map, 1, used, err, errsz);
}

int tl_avro_check_skip(avro_schema_t sch, const unsigned char **p,
                       const unsigned char *end, char *err, size_t errsz)
{
    scan sc = {*p, end, (size_t)(end - *p), err, errsz, 0, 0, NULL};
    if (scan_value(&sc, sch, 1)) return -1;
    *p = sc.p;
    return 0;
}
