#include "event.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "schemas.h"

/* ------------------------------------------------------------------------
 * Channels and reject reasons
 */

static const char *const channel_names[TL_CH__COUNT] = {
    "web", "app", "store", "call_center", "email", "chat", "other",
};

const char *tl_channel_name(tl_channel c)
{
    /* Out-of-range values are a caller bug; "other" keeps output valid. */
    return (unsigned)c < TL_CH__COUNT ? channel_names[c] : "other";
}

int tl_channel_parse(const char *s, size_t len, tl_channel *out)
{
    for (int i = 0; i < TL_CH__COUNT; i++) {
        if (strlen(channel_names[i]) == len &&
            memcmp(channel_names[i], s, len) == 0) {
            *out = (tl_channel)i;
            return 0;
        }
    }
    return -1;
}

const char *tl_reject_name(tl_reject r)
{
    switch (r) {
    case TL_REJECT_NONE: return "none";
    case TL_REJECT_DECODE: return "decode";
    case TL_REJECT_MISSING_CUSTOMER: return "missing_customer";
    case TL_REJECT_LATE: return "late";
    case TL_REJECT_BAD_TIMESTAMP: return "bad_timestamp";
    case TL_REJECT__COUNT: break;
    }
    return "decode";
}

/* ------------------------------------------------------------------------
 * Attributes: sorted by key in byte order, looked up by binary search
 */

static int attr_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

/* Merge sort (stable, O(n log n)) with scratch from the arena: qsort may
 * malloc for large arrays, and the Avro path must not allocate. */
static void sort_attrs(tl_attr *a, size_t n, tl_arena *arena)
{
    if (n < 2) return;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            tl_attr x = a[i];
            size_t j = i;
            while (j > 0 && attr_cmp(a[j - 1].key, a[j - 1].keylen, x.key,
                                     x.keylen) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    tl_attr *tmp = tl_arena_alloc(arena, n * sizeof *tmp);
    tl_attr *src = a, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n;
            size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = attr_cmp(src[j].key, src[j].keylen, src[i].key,
                                    src[i].keylen) < 0
                               ? src[j++]
                               : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        tl_attr *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

const tl_attr *tl_event_attr(const tl_event *ev, const char *key,
                             size_t keylen)
{
    size_t lo = 0, hi = ev->nattrs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const tl_attr *a = &ev->attrs[mid];
        int c = attr_cmp(a->key, a->keylen, key, keylen);
        if (c == 0) return a;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * The event's fields as the Avro schemas spell them
 */

enum field {
    F_EVENT_ID,
    F_CUSTOMER_ID,
    F_TS,
    F_CHANNEL,
    F_TYPE,
    F_ITEM,
    F_QUANTITY,
    F_AMOUNT,
    F_STORE,
    F_ATTRS,
    F__COUNT
};

/* The Avro types tailor can read each field from. */
enum shape {
    SH_STR,     /* string */
    SH_OPT_STR, /* string, or a union of null and string */
    SH_LONG,    /* long or int */
    SH_ENUM,    /* enum */
    SH_OPT_NUM, /* double, float, long, int, or a union of null and one */
    SH_MAP,     /* map of string */
};

static const struct {
    const char *name;
    enum shape shape;
    int required; /* must be in a reader schema */
} fields[F__COUNT] = {
    [F_EVENT_ID] = {"event_id", SH_STR, 1},
    [F_CUSTOMER_ID] = {"customer_id", SH_STR, 1},
    [F_TS] = {"ts", SH_LONG, 1},
    [F_CHANNEL] = {"channel", SH_ENUM, 1},
    [F_TYPE] = {"type", SH_STR, 1},
    [F_ITEM] = {"item", SH_OPT_STR, 0},
    [F_QUANTITY] = {"quantity", SH_OPT_NUM, 0},
    [F_AMOUNT] = {"amount", SH_OPT_NUM, 0},
    [F_STORE] = {"store", SH_OPT_STR, 0},
    [F_ATTRS] = {"attrs", SH_MAP, 0},
};

static const char *const shape_names[] = {
    [SH_STR] = "a string",
    [SH_OPT_STR] = "a string or a union of null and string",
    [SH_LONG] = "a long or an int",
    [SH_ENUM] = "an enum",
    [SH_OPT_NUM] = "a number or a union of null and a number",
    [SH_MAP] = "a map of strings",
};

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (s && is_avro_link(s)) s = avro_schema_link_target(s);
    return s;
}

static int is_num_type(avro_schema_t s)
{
    return is_avro_double(s) || is_avro_float(s) || is_avro_int64(s) ||
           is_avro_int32(s);
}

/* For a union of exactly null and one other type: that type and the branch
 * indexes; else NULL. */
static avro_schema_t nullable_base(avro_schema_t s, int *null_br, int *val_br)
{
    if (!is_avro_union(s) || avro_schema_union_size(s) != 2) return NULL;
    avro_schema_t b0 = unlink_schema(avro_schema_union_branch(s, 0));
    avro_schema_t b1 = unlink_schema(avro_schema_union_branch(s, 1));
    if (is_avro_null(b0) && !is_avro_null(b1)) {
        *null_br = 0, *val_br = 1;
        return b1;
    }
    if (is_avro_null(b1) && !is_avro_null(b0)) {
        *null_br = 1, *val_br = 0;
        return b0;
    }
    return NULL;
}

static int shape_ok(avro_schema_t s, enum shape sh)
{
    int nb, vb;
    avro_schema_t base;
    s = unlink_schema(s);
    switch (sh) {
    case SH_STR: return is_avro_string(s);
    case SH_OPT_STR:
        base = nullable_base(s, &nb, &vb);
        return is_avro_string(s) || (base && is_avro_string(base));
    case SH_LONG: return is_avro_int64(s) || is_avro_int32(s);
    case SH_ENUM: return is_avro_enum(s);
    case SH_OPT_NUM:
        base = nullable_base(s, &nb, &vb);
        return is_num_type(s) || (base && is_num_type(base));
    case SH_MAP:
        return is_avro_map(s) &&
               is_avro_string(unlink_schema(avro_schema_map_values(s)));
    }
    return 0;
}

static int field_index(avro_schema_t rec, const char *name)
{
    return avro_schema_record_field_get_index(rec, name);
}

static avro_schema_t field_schema(avro_schema_t rec, int idx)
{
    return unlink_schema(avro_schema_record_field_get_by_index(rec, idx));
}

/* ------------------------------------------------------------------------
 * Reading values out of Avro-C's generic values
 */

static int value_str(avro_value_t *v, const char **s, size_t *len)
{
    avro_value_t branch;
    if (avro_value_get_type(v) == AVRO_UNION) {
        if (avro_value_get_current_branch(v, &branch)) return -1;
        v = &branch;
    }
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        *s = NULL;
        *len = 0;
        return 0;
    case AVRO_STRING: {
        const char *p = NULL;
        size_t size = 0;
        if (avro_value_get_string(v, &p, &size)) return -1;
        /* Avro-C's size counts the NUL terminator. */
        *s = p ? p : "";
        *len = p && size ? size - 1 : 0;
        return 0;
    }
    default: return -1;
    }
}

static int value_num(avro_value_t *v, int *has, double *out)
{
    avro_value_t branch;
    if (avro_value_get_type(v) == AVRO_UNION) {
        if (avro_value_get_current_branch(v, &branch)) return -1;
        v = &branch;
    }
    *has = 1;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        *has = 0;
        *out = 0;
        return 0;
    case AVRO_DOUBLE: return avro_value_get_double(v, out) ? -1 : 0;
    case AVRO_FLOAT: {
        float f;
        if (avro_value_get_float(v, &f)) return -1;
        *out = f;
        return 0;
    }
    case AVRO_INT64: {
        int64_t l;
        if (avro_value_get_long(v, &l)) return -1;
        *out = (double)l;
        return 0;
    }
    case AVRO_INT32: {
        int32_t i;
        if (avro_value_get_int(v, &i)) return -1;
        *out = i;
        return 0;
    }
    default: return -1;
    }
}

static int value_long(avro_value_t *v, int64_t *out)
{
    int32_t i;
    switch (avro_value_get_type(v)) {
    case AVRO_INT64: return avro_value_get_long(v, out) ? -1 : 0;
    case AVRO_INT32:
        if (avro_value_get_int(v, &i)) return -1;
        *out = i;
        return 0;
    default: return -1;
    }
}

/* ------------------------------------------------------------------------
 * Bounds check of Avro binary data against the writer schema.
 *
 * Avro-C trusts lengths it reads: a string length of 2^40 makes it try to
 * allocate 1 TiB before noticing the data is short (an abort under ASan), a
 * negative length wraps around, and enum indexes are stored unchecked.  So
 * before Avro-C sees a message, this walk checks every length, count and
 * index against the bytes actually present.  It allocates nothing and also
 * yields the exact size, for the trailing-bytes check.
 */

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
    sch = unlink_schema(sch);
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

/* ------------------------------------------------------------------------
 * Decoder
 */

struct tl_event_decoder {
    tl_event_format fmt;
    avro_schema_t reader;       /* reader minus fields the writer lacks */
    avro_schema_t writer;       /* of the bytes (reader's ref if the same) */
    avro_value_iface_t *klass;  /* generic class of reader */
    avro_value_iface_t *resolver; /* writer -> reader, NULL if the same */
    avro_value_t value;         /* the decoded message, reused */
    avro_value_t resolved;      /* resolver view writing into value */
    avro_value_t *target;       /* what avro_value_read fills */
    avro_reader_t in;
    int idx[F__COUNT];          /* field index in reader; -1: use default */

    /* Writer's channel enum index -> tl_channel, -1 when the reader knows
     * no such symbol (Avro-C copies enum indexes without mapping them). */
    avro_schema_t wchannel;
    int *chan_map;
    size_t nchan;

    /* Defaults for fields the reader has and the writer lacks. */
    char *def_str[F__COUNT];
    int64_t def_ts;
    tl_channel def_channel;
    double def_num[F__COUNT];
    int def_has_num[F__COUNT];
    tl_attr *def_attrs;
    size_t def_nattrs;

    /* Direct decoding (no writer schema: the bytes are in the reader's own
     * schema): one step per field of the record, in schema order.  NULL
     * when Avro-C resolves a writer schema instead. */
    struct dstep *plan;
    size_t nplan;
};

static json_t *json_field(json_t *schema_json, const char *name)
{
    json_t *flds = json_object_get(schema_json, "fields"), *f;
    size_t i;
    json_array_foreach(flds, i, f)
    {
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n && strcmp(n, name) == 0) return f;
    }
    return NULL;
}

static int set_default_attrs(tl_event_decoder *d, json_t *obj)
{
    const char *key;
    json_t *val;
    size_t n = json_object_size(obj), i = 0;
    json_object_foreach(obj, key, val)
    {
        if (!json_is_string(val)) return -1;
    }
    d->def_attrs = tl_xcalloc(n, sizeof *d->def_attrs);
    json_object_foreach(obj, key, val)
    {
        tl_attr *a = &d->def_attrs[i++];
        a->keylen = strlen(key);
        a->key = tl_xstrndup(key, a->keylen);
        a->vallen = json_string_length(val);
        a->val = tl_xstrndup(json_string_value(val), a->vallen);
    }
    d->def_nattrs = n;
    /* Sorted once here; small and allocated only at start-up. */
    for (size_t k = 1; k < n; k++) {
        tl_attr x = d->def_attrs[k];
        size_t j = k;
        while (j > 0 && attr_cmp(d->def_attrs[j - 1].key,
                                 d->def_attrs[j - 1].keylen, x.key,
                                 x.keylen) > 0) {
            d->def_attrs[j] = d->def_attrs[j - 1];
            j--;
        }
        d->def_attrs[j] = x;
    }
    return 0;
}

/* Takes the reader's default for field f (absent from the writer). */
static int set_default(tl_event_decoder *d, enum field f, json_t *def)
{
    tl_channel ch;
    if (!def) return -1;
    switch (fields[f].shape) {
    case SH_STR:
    case SH_OPT_STR:
        if (json_is_null(def) && fields[f].shape == SH_OPT_STR) return 0;
        if (!json_is_string(def)) return -1;
        d->def_str[f] =
            tl_xstrndup(json_string_value(def), json_string_length(def));
        return 0;
    case SH_LONG:
        if (!json_is_integer(def)) return -1;
        d->def_ts = json_integer_value(def);
        return 0;
    case SH_ENUM:
        if (!json_is_string(def) ||
            tl_channel_parse(json_string_value(def), json_string_length(def),
                             &ch))
            return -1;
        d->def_channel = ch;
        return 0;
    case SH_OPT_NUM:
        if (json_is_null(def)) return 0;
        if (!json_is_number(def)) return -1;
        d->def_num[f] = json_number_value(def);
        d->def_has_num[f] = 1;
        return 0;
    case SH_MAP: return json_is_object(def) ? set_default_attrs(d, def) : -1;
    }
    return -1;
}

static int parse_schema(const char *json, const char *what, avro_schema_t *out,
                        char *err, size_t errsz)
{
    if (avro_schema_from_json_length(json, strlen(json), out))
        return tl_errf(err, errsz, TL_ERR_CONFIG, "%s schema: %s", what,
                       avro_strerror());
    if (!is_avro_record(*out)) {
        avro_schema_decref(*out);
        *out = NULL;
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s schema: must be a record", what);
    }
    return TL_OK;
}

/* The channel enum mapping: writer symbol -> reader symbol (or the reader
 * enum's default) -> tl_channel. */
static int build_channel_map(tl_event_decoder *d, avro_schema_t rchan,
                             json_t *rjson, char *err, size_t errsz)
{
    int enum_default = -1;
    int nr = avro_schema_enum_number_of_symbols(rchan);
    for (int i = 0; i < nr; i++) {
        const char *sym = avro_schema_enum_get(rchan, i);
        tl_channel ch;
        if (tl_channel_parse(sym, strlen(sym), &ch))
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "reader schema: channel symbol '%s' is not one of "
                           "web, app, store, call_center, email, chat, other",
                           sym);
    }
    json_t *type = json_object_get(json_field(rjson, "channel"), "type");
    json_t *def = json_object_get(type, "default");
    if (json_is_string(def)) {
        tl_channel ch;
        if (tl_channel_parse(json_string_value(def), json_string_length(def),
                             &ch) == 0)
            enum_default = (int)ch;
    }
    int nw = avro_schema_enum_number_of_symbols(d->wchannel);
    d->nchan = nw > 0 ? (size_t)nw : 0;
    d->chan_map = tl_xcalloc(d->nchan, sizeof *d->chan_map);
    for (int i = 0; i < nw; i++) {
        const char *sym = avro_schema_enum_get(d->wchannel, i);
        tl_channel ch;
        if (avro_schema_enum_get_by_name(rchan, sym) >= 0 &&
            tl_channel_parse(sym, strlen(sym), &ch) == 0)
            d->chan_map[i] = (int)ch;
        else
            d->chan_map[i] = enum_default;
    }
    return TL_OK;
}

/* The checks both formats share, once the fields are read: the decode
 * limits first, then a missing customer, then the time. */
static tl_reject check_event(const tl_event *ev, const char *no_customer,
                             char *err, size_t errsz)
{
    if (ev->customer_id_len > TL_EVENT_MAX_CUSTOMER_ID) {
        tl_errf(err, errsz, 0, "customer_id is %zu bytes, more than %d",
                ev->customer_id_len, TL_EVENT_MAX_CUSTOMER_ID);
        return TL_REJECT_DECODE;
    }
    if (ev->nattrs > TL_EVENT_MAX_ATTRS) {
        tl_errf(err, errsz, 0, "field 'attrs' has %zu entries, more than %d",
                ev->nattrs, TL_EVENT_MAX_ATTRS);
        return TL_REJECT_DECODE;
    }
    if (!ev->customer_id || ev->customer_id_len == 0) {
        tl_errf(err, errsz, 0, "%s", no_customer);
        return TL_REJECT_MISSING_CUSTOMER;
    }
    if (ev->ts < TL_EVENT_MIN_TS) {
        tl_errf(err, errsz, 0, "ts %" PRId64 " is before "
                "1970-01-01T00:00:00Z", ev->ts);
        return TL_REJECT_BAD_TIMESTAMP;
    }
    if (ev->ts > TL_EVENT_MAX_TS) {
        tl_errf(err, errsz, 0, "ts %" PRId64 " is after "
                "2200-01-01T00:00:00Z", ev->ts);
        return TL_REJECT_BAD_TIMESTAMP;
    }
    return TL_REJECT_NONE;
}

/* ------------------------------------------------------------------------
 * Direct decoding: the common case of events written with the reader's own
 * schema is read straight from the bytes into the arena, without Avro-C's
 * generic values (avro_value_read allocates and frees a buffer for every
 * string and map key, tens of blocks per event).  The bytes were already
 * checked by avro_scan (every length, count, index and string), so this
 * walk only reads.  A writer schema that differs goes through Avro-C's
 * resolver instead (decode_avro below).
 */

enum dkind { DK_SKIP, DK_STR, DK_LONG, DK_INT, DK_ENUM, DK_DOUBLE, DK_FLOAT,
             DK_MAP };

typedef struct dstep {
    int f;              /* enum field, -1: a field tailor does not read */
    enum dkind kind;    /* of the value, or of the union's non-null branch */
    int null_br;        /* union branch of null, -1: not a union */
    avro_schema_t sch;  /* the field's schema, for skipping */
} dstep;

static enum dkind dkind_of(avro_schema_t s)
{
    s = unlink_schema(s);
    if (is_avro_string(s)) return DK_STR;
    if (is_avro_int64(s)) return DK_LONG;
    if (is_avro_int32(s)) return DK_INT;
    if (is_avro_enum(s)) return DK_ENUM;
    if (is_avro_double(s)) return DK_DOUBLE;
    if (is_avro_float(s)) return DK_FLOAT;
    if (is_avro_map(s)) return DK_MAP;
    return DK_SKIP;
}

/* The reader schema passed shape_ok, so each of our fields is one of the
 * kinds above, possibly in a union with null. */
static void build_plan(tl_event_decoder *d)
{
    size_t n = avro_schema_record_size(d->reader);
    d->plan = tl_xcalloc(n ? n : 1, sizeof *d->plan);
    d->nplan = n;
    for (size_t i = 0; i < n; i++) {
        dstep *st = &d->plan[i];
        const char *name = avro_schema_record_field_name(d->reader, (int)i);
        st->sch = field_schema(d->reader, (int)i);
        st->f = -1;
        st->null_br = -1;
        st->kind = DK_SKIP;
        for (int f = 0; f < F__COUNT; f++)
            if (strcmp(fields[f].name, name) == 0) st->f = f;
        if (st->f < 0) continue;
        int nb, vb;
        avro_schema_t base = nullable_base(st->sch, &nb, &vb);
        if (base) {
            st->null_br = nb;
            st->kind = dkind_of(base);
        } else {
            st->kind = dkind_of(st->sch);
        }
    }
}

typedef struct rd {
    const unsigned char *p, *end;
} rd;

static int rd_varint(rd *r, int64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p == r->end) return -1;
        unsigned b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

static int rd_str(rd *r, const char **s, size_t *n)
{
    int64_t len;
    if (rd_varint(r, &len) || len < 0 || (uint64_t)len > (size_t)(r->end - r->p))
        return -1;
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

/* Little-endian IEEE 754, as Avro writes them, whatever the host order. */
static int rd_fixed(rd *r, size_t n, uint64_t *bits)
{
    if ((size_t)(r->end - r->p) < n) return -1;
    *bits = 0;
    for (size_t i = 0; i < n; i++) *bits |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return 0;
}

/* The attrs map: entries counted first (so they land in one array), then
 * read; duplicate keys keep the last value, as Avro-C's map does. */
static int rd_map(rd *r, tl_arena *arena, tl_event *ev)
{
    rd c = *r;
    size_t total = 0;
    for (;;) {
        int64_t count, size;
        if (rd_varint(&c, &count)) return -1;
        if (count == 0) break;
        if (count < 0) {
            if (count == INT64_MIN || rd_varint(&c, &size)) return -1;
            count = -count;
        }
        for (int64_t i = 0; i < count; i++) {
            const char *k, *v;
            size_t kl, vl;
            if (rd_str(&c, &k, &kl) || rd_str(&c, &v, &vl)) return -1;
        }
        total += (size_t)count;
    }
    tl_attr *a = tl_arena_alloc(arena, (total ? total : 1) * sizeof *a);
    size_t n = 0;
    for (;;) {
        int64_t count, size;
        if (rd_varint(r, &count)) return -1;
        if (count == 0) break;
        if (count < 0) {
            if (rd_varint(r, &size)) return -1;
            count = -count;
        }
        for (int64_t i = 0; i < count; i++, n++) {
            const char *k, *v;
            if (rd_str(r, &k, &a[n].keylen) || rd_str(r, &v, &a[n].vallen))
                return -1;
            a[n].key = tl_arena_strndup(arena, k, a[n].keylen);
            a[n].val = tl_arena_strndup(arena, v, a[n].vallen);
        }
    }
    sort_attrs(a, n, arena);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        /* The stable sort keeps equal keys in input order: the last wins. */
        if (i + 1 < n && attr_cmp(a[i].key, a[i].keylen, a[i + 1].key,
                                  a[i + 1].keylen) == 0)
            continue;
        a[w++] = a[i];
    }
    ev->attrs = a;
    ev->nattrs = w;
    return 0;
}

static void put_str(tl_event *ev, int f, const char *s, size_t n)
{
    switch (f) {
    case F_EVENT_ID: ev->event_id = s; break;
    case F_CUSTOMER_ID:
        ev->customer_id = s;
        ev->customer_id_len = n;
        break;
    case F_TYPE: ev->type = s; break;
    case F_ITEM: ev->item = s; break;
    case F_STORE: ev->store = s; break;
    default: break;
    }
}

static void put_num(tl_event *ev, int f, int has, double x)
{
    if (f == F_QUANTITY) {
        ev->has_quantity = has;
        ev->quantity = x;
    } else if (f == F_AMOUNT) {
        ev->has_amount = has;
        ev->amount = x;
    }
}

/* The reader's default attrs (the writer lacks the field), into the arena. */
static void default_attrs(const tl_event_decoder *d, tl_arena *arena,
                          tl_event *ev)
{
    tl_attr *a = tl_arena_alloc(arena, d->def_nattrs * sizeof *a);
    for (size_t i = 0; i < d->def_nattrs; i++) {
        const tl_attr *s = &d->def_attrs[i];
        a[i] = *s;
        a[i].key = tl_arena_strndup(arena, s->key, s->keylen);
        a[i].val = tl_arena_strndup(arena, s->val, s->vallen);
    }
    ev->attrs = a;
    ev->nattrs = d->def_nattrs;
}

/* Fields of the reader schema that are not in the bytes (the reader lacks
 * an optional field): what Avro-C's path gives them. */
static void fill_absent(tl_event_decoder *d, const int *seen, tl_arena *arena,
                        tl_event *ev)
{
    for (int f = 0; f < F__COUNT; f++) {
        if (seen[f]) continue;
        switch (fields[f].shape) {
        case SH_STR:
        case SH_OPT_STR: {
            const char *s = d->def_str[f];
            size_t n = s ? strlen(s) : 0;
            put_str(ev, f, s ? tl_arena_strndup(arena, s, n) : NULL, n);
            break;
        }
        case SH_LONG: ev->ts = d->def_ts; break;
        case SH_ENUM: ev->channel = d->def_channel; break;
        case SH_OPT_NUM: put_num(ev, f, d->def_has_num[f], d->def_num[f]); break;
        case SH_MAP: default_attrs(d, arena, ev); break;
        }
    }
}

static int decode_step(tl_event_decoder *d, const dstep *st, rd *r,
                       tl_arena *arena, tl_event *ev, char *err, size_t errsz)
{
    int64_t v;
    uint64_t bits;
    if (st->f < 0) {
        scan sc = {r->p, r->end, (size_t)(r->end - r->p), err, errsz,
                   0, 0, NULL};
        if (scan_value(&sc, st->sch, 1)) return -1;
        r->p = sc.p;
        return 0;
    }
    if (st->null_br >= 0) {
        if (rd_varint(r, &v)) return -1;
        if (v == st->null_br) {
            if (fields[st->f].shape == SH_OPT_NUM) put_num(ev, st->f, 0, 0);
            else put_str(ev, st->f, NULL, 0);
            return 0;
        }
    }
    switch (st->kind) {
    case DK_STR: {
        const char *s;
        size_t n;
        if (rd_str(r, &s, &n)) return -1;
        put_str(ev, st->f, tl_arena_strndup(arena, s, n), n);
        return 0;
    }
    case DK_LONG:
    case DK_INT:
        if (rd_varint(r, &v)) return -1;
        if (st->f == F_TS) ev->ts = v;
        else put_num(ev, st->f, 1, (double)v);
        return 0;
    case DK_DOUBLE: {
        double x;
        if (rd_fixed(r, 8, &bits)) return -1;
        memcpy(&x, &bits, sizeof x);
        put_num(ev, st->f, 1, x);
        return 0;
    }
    case DK_FLOAT: {
        float x;
        uint32_t b32;
        if (rd_fixed(r, 4, &bits)) return -1;
        b32 = (uint32_t)bits;
        memcpy(&x, &b32, sizeof x);
        put_num(ev, st->f, 1, x);
        return 0;
    }
    case DK_ENUM:
        if (rd_varint(r, &v) || v < 0 || (uint64_t)v >= d->nchan) return -1;
        if (d->chan_map[v] < 0) {
            tl_errf(err, errsz, 0,
                    "channel '%s' is not a symbol of the reader schema",
                    avro_schema_enum_get(d->wchannel, (int)v));
            return -2;
        }
        ev->channel = (tl_channel)d->chan_map[v];
        return 0;
    case DK_MAP: return rd_map(r, arena, ev);
    case DK_SKIP: break;
    }
    return -1;
}

static tl_reject decode_direct(tl_event_decoder *d, const void *buf,
                               size_t len, tl_arena *arena, tl_event *ev,
                               char *err, size_t errsz)
{
    rd r = {buf, (const unsigned char *)buf + len};
    int seen[F__COUNT] = {0};
    for (size_t i = 0; i < d->nplan; i++) {
        const dstep *st = &d->plan[i];
        int rc = decode_step(d, st, &r, arena, ev, err, errsz);
        if (rc == -2) return TL_REJECT_DECODE;
        if (rc) {
            /* Unreachable after avro_scan; kept as a guard. */
            tl_errf(err, errsz, 0, "cannot read field '%s' of the Avro event",
                    avro_schema_record_field_name(d->reader, (int)i));
            return TL_REJECT_DECODE;
        }
        if (st->f >= 0) seen[st->f] = 1;
    }
    fill_absent(d, seen, arena, ev);
    if (!ev->event_id) ev->event_id = "";
    if (!ev->type) ev->type = "";
    return check_event(ev, "customer_id is empty", err, errsz);
}

static int avro_decoder_init(tl_event_decoder *d, const char *reader_json,
                             const char *writer_json, char *err, size_t errsz)
{
    json_t *rjson = NULL;
    char *eff_json = NULL;
    avro_schema_t configured = NULL;
    int rc = TL_ERR_CONFIG;

    if (!reader_json) reader_json = tl_schema_interaction_event;
    if (parse_schema(reader_json, "reader", &configured, err, errsz)) goto fail;
    json_error_t jerr;
    rjson = json_loads(reader_json, 0, &jerr);
    if (!rjson) { /* Avro-C accepted it, so this is unexpected */
        tl_errf(err, errsz, TL_ERR_CONFIG, "reader schema: %s", jerr.text);
        goto fail;
    }
    for (int f = 0; f < F__COUNT; f++) {
        int i = field_index(configured, fields[f].name);
        if (i < 0 && fields[f].required) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "reader schema: field '%s' is missing", fields[f].name);
            goto fail;
        }
        if (i >= 0 && !shape_ok(field_schema(configured, i), fields[f].shape)) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "reader schema: field '%s' must be %s", fields[f].name,
                    shape_names[fields[f].shape]);
            goto fail;
        }
    }

    if (writer_json &&
        parse_schema(writer_json, "writer", &d->writer, err, errsz))
        goto fail;

    if (d->writer) {
        /* Avro-C's resolver refuses reader fields the writer lacks (it has
         * no support for defaults), so read with a reader schema without
         * them and fill in their defaults ourselves. */
        json_t *rfields = json_object_get(rjson, "fields");
        size_t i = 0;
        int dropped = 0;
        while (i < json_array_size(rfields)) {
            json_t *f = json_array_get(rfields, i);
            const char *name = json_string_value(json_object_get(f, "name"));
            if (!name || field_index(d->writer, name) >= 0) {
                i++;
                continue;
            }
            json_t *def = json_object_get(f, "default");
            if (!def) {
                tl_errf(err, errsz, TL_ERR_CONFIG,
                        "writer schema lacks reader field '%s', which has no "
                        "default",
                        name);
                goto fail;
            }
            for (int k = 0; k < F__COUNT; k++) {
                if (strcmp(fields[k].name, name) == 0 &&
                    set_default(d, (enum field)k, def)) {
                    tl_errf(err, errsz, TL_ERR_CONFIG,
                            "reader schema: unusable default for field '%s'",
                            name);
                    goto fail;
                }
            }
            json_array_remove(rfields, i);
            dropped = 1;
        }
        if (dropped) {
            eff_json = json_dumps(rjson, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (!eff_json) {
                tl_errf(err, errsz, TL_ERR_NOMEM,
                        "reader schema: out of memory");
                goto fail;
            }
            if (parse_schema(eff_json, "reader", &d->reader, err, errsz))
                goto fail;
        }
    }
    if (!d->reader) {
        d->reader = configured;
        configured = NULL;
    }
    if (!d->writer) d->writer = avro_schema_incref(d->reader);

    if (writer_json) {
        d->resolver = avro_resolved_writer_new(d->writer, d->reader);
        if (!d->resolver) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "writer schema does not resolve to the reader schema: %s",
                    avro_strerror());
            goto fail;
        }
    }
    d->klass = avro_generic_class_from_schema(d->reader);
    if (!d->klass || avro_generic_value_new(d->klass, &d->value)) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "reader schema: %s",
                avro_strerror());
        goto fail;
    }
    d->target = &d->value;
    if (d->resolver) {
        if (avro_resolved_writer_new_value(d->resolver, &d->resolved)) {
            tl_errf(err, errsz, TL_ERR_CONFIG, "writer schema: %s",
                    avro_strerror());
            goto fail;
        }
        avro_resolved_writer_set_dest(&d->resolved, &d->value);
        d->target = &d->resolved;
    }

    for (int f = 0; f < F__COUNT; f++)
        d->idx[f] = field_index(d->reader, fields[f].name);
    if (d->idx[F_CHANNEL] >= 0) {
        avro_schema_t rchan = field_schema(d->reader, d->idx[F_CHANNEL]);
        d->wchannel = rchan;
        if (writer_json) {
            int wi = field_index(d->writer, "channel");
            d->wchannel = field_schema(d->writer, wi);
            if (!is_avro_enum(d->wchannel)) {
                tl_errf(err, errsz, TL_ERR_CONFIG,
                        "writer schema: field 'channel' must be an enum");
                goto fail;
            }
        }
        if (build_channel_map(d, rchan, rjson, err, errsz)) goto fail;
    }

    if (!writer_json) build_plan(d);
    d->in = avro_reader_memory(NULL, 0);
    if (!d->in) {
        tl_errf(err, errsz, TL_ERR_NOMEM, "cannot create an Avro reader");
        goto fail;
    }
    rc = TL_OK;
fail:
    if (configured) avro_schema_decref(configured);
    free(eff_json);
    json_decref(rjson);
    return rc;
}

tl_event_decoder *tl_event_decoder_new(tl_event_format fmt,
                                       const char *reader_schema_json,
                                       const char *writer_schema_json,
                                       char *err, size_t errsz)
{
    tl_event_decoder *d = tl_xcalloc(1, sizeof *d);
    d->fmt = fmt;
    d->def_channel = TL_CH_OTHER;
    if (fmt == TL_FMT_JSON) return d;
    if (fmt != TL_FMT_AVRO) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "unknown event format %d",
                (int)fmt);
        goto fail;
    }
    if (avro_decoder_init(d, reader_schema_json, writer_schema_json, err,
                          errsz))
        goto fail;
    return d;
fail:
    tl_event_decoder_free(d);
    return NULL;
}

void tl_event_decoder_free(tl_event_decoder *d)
{
    if (!d) return;
    if (d->in) avro_reader_free(d->in);
    if (d->resolved.self) avro_value_decref(&d->resolved);
    if (d->value.self) avro_value_decref(&d->value);
    if (d->resolver) avro_value_iface_decref(d->resolver);
    if (d->klass) avro_value_iface_decref(d->klass);
    if (d->writer) avro_schema_decref(d->writer);
    if (d->reader) avro_schema_decref(d->reader);
    free(d->chan_map);
    free(d->plan);
    for (int f = 0; f < F__COUNT; f++) free(d->def_str[f]);
    for (size_t i = 0; i < d->def_nattrs; i++) {
        free((char *)d->def_attrs[i].key);
        free((char *)d->def_attrs[i].val);
    }
    free(d->def_attrs);
    free(d);
}

/* Field f of the decoded record, or 0 when the writer lacks it. */
static int get_field(tl_event_decoder *d, enum field f, avro_value_t *out)
{
    if (d->idx[f] < 0) return 0;
    return avro_value_get_by_index(&d->value, (size_t)d->idx[f], out, NULL)
               ? -1
               : 1;
}

static int take_str(tl_event_decoder *d, enum field f, tl_arena *arena,
                    const char **out, size_t *outlen)
{
    avro_value_t v;
    const char *s;
    size_t n;
    int got = get_field(d, f, &v);
    if (got < 0) return -1;
    if (got == 0) {
        s = d->def_str[f];
        n = s ? strlen(s) : 0;
    } else if (value_str(&v, &s, &n)) {
        return -1;
    }
    *out = s ? tl_arena_strndup(arena, s, n) : NULL;
    if (outlen) *outlen = n;
    return 0;
}

static int take_num(tl_event_decoder *d, enum field f, int *has, double *out)
{
    avro_value_t v;
    int got = get_field(d, f, &v);
    if (got < 0) return -1;
    if (got == 0) {
        *has = d->def_has_num[f];
        *out = d->def_num[f];
        return 0;
    }
    return value_num(&v, has, out);
}

static int take_attrs(tl_event_decoder *d, tl_arena *arena, tl_event *ev)
{
    avro_value_t map;
    size_t n;
    int got = get_field(d, F_ATTRS, &map);
    if (got < 0) return -1;
    if (got == 0) {
        default_attrs(d, arena, ev);
        return 0;
    }
    if (avro_value_get_size(&map, &n)) return -1;
    tl_attr *a = tl_arena_alloc(arena, n * sizeof *a);
    for (size_t i = 0; i < n; i++) {
        avro_value_t elem;
        const char *key, *val;
        size_t vallen;
        if (avro_value_get_by_index(&map, i, &elem, &key) ||
            value_str(&elem, &val, &vallen) || !val)
            return -1;
        a[i].keylen = strlen(key);
        a[i].key = tl_arena_strndup(arena, key, a[i].keylen);
        a[i].val = tl_arena_strndup(arena, val, vallen);
        a[i].vallen = vallen;
    }
    sort_attrs(a, n, arena);
    ev->attrs = a;
    ev->nattrs = n;
    return 0;
}

static tl_reject decode_avro(tl_event_decoder *d, const void *buf, size_t len,
                             tl_arena *arena, tl_event *ev, char *err,
                             size_t errsz)
{
    avro_value_t v;
    int got;
    size_t used;
    if (len == 0) {
        tl_errf(err, errsz, 0, "empty message");
        return TL_REJECT_DECODE;
    }
    /* Text and the attrs count are checked here, on the bytes: Avro-C
     * would copy invalid text as is and allocate for every entry. */
    if (avro_scan(d->writer, buf, len, TL_EVENT_MAX_ATTRS, 1, &used, err,
                  errsz))
        return TL_REJECT_DECODE;
    if (used != len) {
        tl_errf(err, errsz, 0, "%zu trailing bytes after the event",
                len - used);
        return TL_REJECT_DECODE;
    }

    if (d->plan) return decode_direct(d, buf, len, arena, ev, err, errsz);

    /* avro_value_read resets the (reused) value first, releasing the
     * previous message's strings. */
    avro_reader_memory_set_source(d->in, buf, (int64_t)len);
    if (avro_value_read(d->in, d->target)) {
        tl_errf(err, errsz, 0, "cannot decode Avro event: %s",
                avro_strerror());
        return TL_REJECT_DECODE;
    }

    const char *what = "event_id";
    if (take_str(d, F_EVENT_ID, arena, &ev->event_id, NULL)) goto bad;
    what = "customer_id";
    if (take_str(d, F_CUSTOMER_ID, arena, &ev->customer_id,
                 &ev->customer_id_len))
        goto bad;
    what = "ts";
    if ((got = get_field(d, F_TS, &v)) < 0) goto bad;
    if (got == 0)
        ev->ts = d->def_ts;
    else if (value_long(&v, &ev->ts))
        goto bad;
    what = "channel";
    if ((got = get_field(d, F_CHANNEL, &v)) < 0) goto bad;
    if (got == 0) {
        ev->channel = d->def_channel;
    } else {
        int e;
        if (avro_value_get_enum(&v, &e) || e < 0 || (size_t)e >= d->nchan)
            goto bad;
        if (d->chan_map[e] < 0) {
            tl_errf(err, errsz, 0,
                    "channel '%s' is not a symbol of the reader schema",
                    avro_schema_enum_get(d->wchannel, e));
            return TL_REJECT_DECODE;
        }
        ev->channel = (tl_channel)d->chan_map[e];
    }
    what = "type";
    if (take_str(d, F_TYPE, arena, &ev->type, NULL)) goto bad;
    what = "item";
    if (take_str(d, F_ITEM, arena, &ev->item, NULL)) goto bad;
    what = "store";
    if (take_str(d, F_STORE, arena, &ev->store, NULL)) goto bad;
    what = "quantity";
    if (take_num(d, F_QUANTITY, &ev->has_quantity, &ev->quantity)) goto bad;
    what = "amount";
    if (take_num(d, F_AMOUNT, &ev->has_amount, &ev->amount)) goto bad;
    what = "attrs";
    if (take_attrs(d, arena, ev)) goto bad;
    if (!ev->event_id) ev->event_id = "";
    if (!ev->type) ev->type = "";
    return check_event(ev, "customer_id is empty", err, errsz);
bad:
    tl_errf(err, errsz, 0, "cannot read field '%s' of the Avro event", what);
    return TL_REJECT_DECODE;
}

tl_reject tl_event_decode(tl_event_decoder *d, const void *buf, size_t len,
                          tl_arena *arena, tl_event *ev, char *err,
                          size_t errsz)
{
    memset(ev, 0, sizeof *ev);
    /* Before anything looks at the bytes. */
    if (len > TL_EVENT_MAX_SIZE) {
        tl_errf(err, errsz, 0, "message is %zu bytes, more than %zu", len,
                TL_EVENT_MAX_SIZE);
        return TL_REJECT_DECODE;
    }
    if (d->fmt == TL_FMT_JSON)
        return tl_event_from_json(buf, len, arena, ev, err, errsz);
    return decode_avro(d, buf, len, arena, ev, err, errsz);
}

/* ------------------------------------------------------------------------
 * JSON lines
 */

static void sb_str(tl_buf *b, const char *s) { tl_buf_append(b, s, strlen(s)); }

static void sb_json_string(tl_buf *b, const char *s, size_t n)
{
    tl_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        switch (c) {
        case '"': tl_buf_append(b, "\\\"", 2); break;
        case '\\': tl_buf_append(b, "\\\\", 2); break;
        case '\n': tl_buf_append(b, "\\n", 2); break;
        case '\r': tl_buf_append(b, "\\r", 2); break;
        case '\t': tl_buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                tl_buf_append(b, esc, 6);
            } else {
                tl_buf_append(b, (const char *)&s[i], 1);
            }
        }
    }
    tl_buf_append(b, "\"", 1);
}

/* Compact JSON text of v, numbers in shortest round-trip form (jansson's own
 * dump prints 0.29 as 0.28999999999999998). */
static void sb_json(tl_buf *b, json_t *v)
{
    char num[TL_NUMBUF];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        tl_buf_append(b, "{", 1);
        json_object_foreach(v, key, val)
        {
            if (!first) tl_buf_append(b, ",", 1);
            first = 0;
            sb_json_string(b, key, strlen(key));
            tl_buf_append(b, ":", 1);
            sb_json(b, val);
        }
        tl_buf_append(b, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        tl_buf_append(b, "[", 1);
        json_array_foreach(v, i, val)
        {
            if (i) tl_buf_append(b, ",", 1);
            sb_json(b, val);
        }
        tl_buf_append(b, "]", 1);
        break;
    }
    case JSON_STRING:
        sb_json_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        /* Exact, also beyond 2^53 where a double would round. */
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        sb_str(b, num);
        break;
    case JSON_REAL:
        tl_fmt_double(num, json_real_value(v));
        sb_str(b, num);
        break;
    case JSON_TRUE: sb_str(b, "true"); break;
    case JSON_FALSE: sb_str(b, "false"); break;
    case JSON_NULL: sb_str(b, "null"); break;
    }
}

static tl_reject json_fail(char *err, size_t errsz, const char *fmt,
                           const char *field)
{
    tl_errf(err, errsz, 0, fmt, field);
    return TL_REJECT_DECODE;
}

/* Optional string: absent or null gives NULL. */
static tl_reject json_opt_str(json_t *root, const char *name, tl_arena *arena,
                              const char **out, size_t *outlen, char *err,
                              size_t errsz)
{
    json_t *v = json_object_get(root, name);
    *out = NULL;
    if (outlen) *outlen = 0;
    if (!v || json_is_null(v)) return TL_REJECT_NONE;
    if (!json_is_string(v))
        return json_fail(err, errsz, "field '%s' must be a string or null",
                         name);
    *out = tl_arena_strndup(arena, json_string_value(v), json_string_length(v));
    if (outlen) *outlen = json_string_length(v);
    return TL_REJECT_NONE;
}

static tl_reject json_req_str(json_t *root, const char *name, tl_arena *arena,
                              const char **out, char *err, size_t errsz)
{
    json_t *v = json_object_get(root, name);
    if (!v) return json_fail(err, errsz, "missing field '%s'", name);
    if (!json_is_string(v))
        return json_fail(err, errsz, "field '%s' must be a string", name);
    *out = tl_arena_strndup(arena, json_string_value(v), json_string_length(v));
    return TL_REJECT_NONE;
}

static tl_reject json_opt_num(json_t *root, const char *name, int *has,
                              double *out, char *err, size_t errsz)
{
    json_t *v = json_object_get(root, name);
    *has = 0;
    *out = 0;
    if (!v || json_is_null(v)) return TL_REJECT_NONE;
    if (!json_is_number(v))
        return json_fail(err, errsz, "field '%s' must be a number or null",
                         name);
    *has = 1;
    *out = json_number_value(v);
    return TL_REJECT_NONE;
}

static tl_reject json_attrs(json_t *root, tl_arena *arena, tl_event *ev,
                            char *err, size_t errsz)
{
    json_t *obj = json_object_get(root, "attrs"), *val;
    const char *key;
    tl_buf b = {0};
    size_t n = 0;
    ev->attrs = NULL;
    ev->nattrs = 0;
    if (!obj || json_is_null(obj)) return TL_REJECT_NONE;
    if (!json_is_object(obj))
        return json_fail(err, errsz, "field '%s' must be an object", "attrs");
    if (json_object_size(obj) > TL_EVENT_MAX_ATTRS) {
        tl_errf(err, errsz, 0, "field 'attrs' has %zu entries, more than %d",
                json_object_size(obj), TL_EVENT_MAX_ATTRS);
        return TL_REJECT_DECODE;
    }
    tl_attr *a = tl_arena_alloc(arena, json_object_size(obj) * sizeof *a);
    json_object_foreach(obj, key, val)
    {
        if (json_is_null(val)) continue;
        tl_attr *at = &a[n++];
        at->keylen = strlen(key);
        at->key = tl_arena_strndup(arena, key, at->keylen);
        if (json_is_string(val)) {
            at->vallen = json_string_length(val);
            at->val = tl_arena_strndup(arena, json_string_value(val),
                                       at->vallen);
            continue;
        }
        b.len = 0;
        sb_json(&b, val);
        at->vallen = b.len;
        at->val = tl_arena_strndup(arena, b.s ? b.s : "", b.len);
    }
    tl_buf_free(&b);
    sort_attrs(a, n, arena);
    ev->attrs = a;
    ev->nattrs = n;
    return TL_REJECT_NONE;
}

tl_reject tl_event_from_json(const char *json, size_t len, tl_arena *arena,
                             tl_event *ev, char *err, size_t errsz)
{
    json_error_t jerr;
    tl_reject r = TL_REJECT_DECODE;
    json_t *v;

    memset(ev, 0, sizeof *ev);
    /* An empty Kafka message has a NULL payload; jansson refuses NULL. */
    json_t *root = json_loadb(json ? json : "", json ? len : 0,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        tl_errf(err, errsz, 0, "invalid JSON at line %d column %d: %s",
                jerr.line, jerr.column, jerr.text);
        return TL_REJECT_DECODE;
    }
    if (!json_is_object(root)) {
        tl_errf(err, errsz, 0, "the event must be a JSON object");
        goto fail;
    }
    if ((r = json_req_str(root, "event_id", arena, &ev->event_id, err, errsz)))
        goto fail;
    /* An absent or empty customer is a reason of its own (checked last, so
     * that malformed events are reported as such). */
    if ((r = json_opt_str(root, "customer_id", arena, &ev->customer_id,
                          &ev->customer_id_len, err, errsz))) {
        json_fail(err, errsz, "field '%s' must be a string", "customer_id");
        goto fail;
    }
    v = json_object_get(root, "ts");
    if (!v) {
        r = json_fail(err, errsz, "missing field '%s'", "ts");
        goto fail;
    }
    if (!json_is_integer(v)) {
        r = json_fail(err, errsz, "field '%s' must be an integer", "ts");
        goto fail;
    }
    ev->ts = json_integer_value(v);
    v = json_object_get(root, "channel");
    if (!v) {
        r = json_fail(err, errsz, "missing field '%s'", "channel");
        goto fail;
    }
    if (!json_is_string(v) || tl_channel_parse(json_string_value(v),
                                               json_string_length(v),
                                               &ev->channel)) {
        r = json_fail(err, errsz,
                      "field '%s' must be one of web, app, store, "
                      "call_center, email, chat, other",
                      "channel");
        goto fail;
    }
    if ((r = json_req_str(root, "type", arena, &ev->type, err, errsz)) ||
        (r = json_opt_str(root, "item", arena, &ev->item, NULL, err, errsz)) ||
        (r = json_opt_str(root, "store", arena, &ev->store, NULL, err,
                          errsz)) ||
        (r = json_opt_num(root, "quantity", &ev->has_quantity, &ev->quantity,
                          err, errsz)) ||
        (r = json_opt_num(root, "amount", &ev->has_amount, &ev->amount, err,
                          errsz)) ||
        (r = json_attrs(root, arena, ev, err, errsz)))
        goto fail;
    /* jansson has checked the text: valid UTF-8, no NUL (\u0000 is refused
     * without JSON_ALLOW_NUL). */
    r = check_event(ev, "customer_id is missing or empty", err, errsz);
fail:
    json_decref(root);
    return r;
}

/* ------------------------------------------------------------------------
 * Encoder
 */

struct tl_event_encoder {
    avro_schema_t schema;
    avro_value_iface_t *klass;
    avro_value_t value;
    avro_writer_t out;
    char *buf;
    size_t cap;
    int idx[F__COUNT];
    int null_br[F__COUNT], val_br[F__COUNT]; /* -1 unless a nullable union */
};

/* Output larger than this is a runaway event, not something to produce. */
#define ENC_MAX_SIZE ((size_t)64 << 20)

tl_event_encoder *tl_event_encoder_new(const char *schema_json, char *err,
                                       size_t errsz)
{
    tl_event_encoder *enc = tl_xcalloc(1, sizeof *enc);
    if (!schema_json) schema_json = tl_schema_interaction_event;
    if (parse_schema(schema_json, "event", &enc->schema, err, errsz))
        goto fail;
    for (size_t i = 0; i < avro_schema_record_size(enc->schema); i++) {
        const char *name =
            avro_schema_record_field_name(enc->schema, (int)i);
        int known = 0;
        for (int f = 0; f < F__COUNT; f++)
            known |= strcmp(fields[f].name, name) == 0;
        if (!known) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "event schema: field '%s' is not an event field", name);
            goto fail;
        }
    }
    for (int f = 0; f < F__COUNT; f++) {
        int i = field_index(enc->schema, fields[f].name);
        enc->idx[f] = i;
        enc->null_br[f] = enc->val_br[f] = -1;
        if (i < 0) continue;
        avro_schema_t fs = field_schema(enc->schema, i);
        if (!shape_ok(fs, fields[f].shape)) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "event schema: field '%s' must be %s", fields[f].name,
                    shape_names[fields[f].shape]);
            goto fail;
        }
        nullable_base(fs, &enc->null_br[f], &enc->val_br[f]);
    }
    enc->klass = avro_generic_class_from_schema(enc->schema);
    if (!enc->klass || avro_generic_value_new(enc->klass, &enc->value)) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "event schema: %s",
                avro_strerror());
        goto fail;
    }
    enc->cap = 256;
    enc->buf = tl_xmalloc(enc->cap);
    enc->out = avro_writer_memory(enc->buf, (int64_t)enc->cap);
    if (!enc->out) {
        tl_errf(err, errsz, TL_ERR_NOMEM, "cannot create an Avro writer");
        goto fail;
    }
    return enc;
fail:
    tl_event_encoder_free(enc);
    return NULL;
}

void tl_event_encoder_free(tl_event_encoder *enc)
{
    if (!enc) return;
    if (enc->out) avro_writer_free(enc->out);
    if (enc->value.self) avro_value_decref(&enc->value);
    if (enc->klass) avro_value_iface_decref(enc->klass);
    if (enc->schema) avro_schema_decref(enc->schema);
    free(enc->buf);
    free(enc);
}

/* The field's value, with a nullable union's branch chosen. */
static int enc_field(tl_event_encoder *enc, enum field f, int is_null,
                     avro_value_t *out, char *err, size_t errsz)
{
    avro_value_t v;
    if (avro_value_get_by_index(&enc->value, (size_t)enc->idx[f], &v, NULL))
        goto avro_fail;
    if (enc->null_br[f] < 0) {
        if (is_null)
            return tl_errf(err, errsz, TL_ERR, "field '%s' is absent but the "
                           "schema does not allow null", fields[f].name);
        *out = v;
        return TL_OK;
    }
    if (avro_value_set_branch(&v, is_null ? enc->null_br[f] : enc->val_br[f],
                              out))
        goto avro_fail;
    if (is_null && avro_value_set_null(out)) goto avro_fail;
    return TL_OK;
avro_fail:
    return tl_errf(err, errsz, TL_ERR, "field '%s': %s", fields[f].name,
                   avro_strerror());
}

static int enc_str(tl_event_encoder *enc, enum field f, const char *s,
                   size_t len, char *err, size_t errsz)
{
    avro_value_t v;
    int rc;
    if (enc->idx[f] < 0) return TL_OK;
    if ((rc = enc_field(enc, f, s == NULL, &v, err, errsz))) return rc;
    if (s && avro_value_set_string_len(&v, s, len + 1))
        return tl_errf(err, errsz, TL_ERR, "field '%s': %s", fields[f].name,
                       avro_strerror());
    return TL_OK;
}

static int enc_num(tl_event_encoder *enc, enum field f, int has, double x,
                   char *err, size_t errsz)
{
    avro_value_t v;
    int rc;
    if (enc->idx[f] < 0) return TL_OK;
    if ((rc = enc_field(enc, f, !has, &v, err, errsz)) || !has) return rc;
    switch (avro_value_get_type(&v)) {
    case AVRO_DOUBLE: rc = avro_value_set_double(&v, x); break;
    case AVRO_FLOAT: rc = avro_value_set_float(&v, (float)x); break;
    case AVRO_INT64:
    case AVRO_INT32: {
        int is32 = avro_value_get_type(&v) == AVRO_INT32;
        double lim = is32 ? 2147483648.0 : 9223372036854775808.0;
        if (x != (double)(int64_t)x || x < -lim || x >= lim)
            return tl_errf(err, errsz, TL_ERR,
                           "field '%s': %g does not fit the schema's %s",
                           fields[f].name, x, is32 ? "int" : "long");
        rc = is32 ? avro_value_set_int(&v, (int32_t)x)
                  : avro_value_set_long(&v, (int64_t)x);
        break;
    }
    default: rc = EINVAL;
    }
    if (rc)
        return tl_errf(err, errsz, TL_ERR, "field '%s': %s", fields[f].name,
                       avro_strerror());
    return TL_OK;
}

static int enc_fill(tl_event_encoder *enc, const tl_event *ev, char *err,
                    size_t errsz)
{
    avro_value_t v;
    int rc;
    const char *cid = ev->customer_id ? ev->customer_id : "";
    size_t cidlen = ev->customer_id ? ev->customer_id_len : 0;
    if ((rc = enc_str(enc, F_EVENT_ID, ev->event_id ? ev->event_id : "",
                      ev->event_id ? strlen(ev->event_id) : 0, err, errsz)) ||
        (rc = enc_str(enc, F_CUSTOMER_ID, cid, cidlen, err, errsz)) ||
        (rc = enc_str(enc, F_TYPE, ev->type ? ev->type : "",
                      ev->type ? strlen(ev->type) : 0, err, errsz)) ||
        (rc = enc_str(enc, F_ITEM, ev->item, ev->item ? strlen(ev->item) : 0,
                      err, errsz)) ||
        (rc = enc_str(enc, F_STORE, ev->store,
                      ev->store ? strlen(ev->store) : 0, err, errsz)) ||
        (rc = enc_num(enc, F_QUANTITY, ev->has_quantity, ev->quantity, err,
                      errsz)) ||
        (rc = enc_num(enc, F_AMOUNT, ev->has_amount, ev->amount, err, errsz)))
        return rc;
    if (enc->idx[F_TS] >= 0) {
        if ((rc = enc_field(enc, F_TS, 0, &v, err, errsz))) return rc;
        if (avro_value_get_type(&v) == AVRO_INT32) {
            if (ev->ts < INT32_MIN || ev->ts > INT32_MAX)
                return tl_errf(err, errsz, TL_ERR,
                               "field 'ts': %" PRId64 " does not fit an int",
                               ev->ts);
            rc = avro_value_set_int(&v, (int32_t)ev->ts);
        } else {
            rc = avro_value_set_long(&v, ev->ts);
        }
        if (rc) goto avro_fail;
    }
    if (enc->idx[F_CHANNEL] >= 0) {
        avro_schema_t es = field_schema(enc->schema, enc->idx[F_CHANNEL]);
        const char *sym = tl_channel_name(ev->channel);
        int e = avro_schema_enum_get_by_name(es, sym);
        if (e < 0)
            return tl_errf(err, errsz, TL_ERR,
                           "channel '%s' is not a symbol of the schema", sym);
        if ((rc = enc_field(enc, F_CHANNEL, 0, &v, err, errsz))) return rc;
        if (avro_value_set_enum(&v, e)) goto avro_fail;
    }
    if (enc->idx[F_ATTRS] >= 0) {
        if ((rc = enc_field(enc, F_ATTRS, 0, &v, err, errsz))) return rc;
        for (size_t i = 0; i < ev->nattrs; i++) {
            avro_value_t elem;
            if (avro_value_add(&v, ev->attrs[i].key, &elem, NULL, NULL) ||
                avro_value_set_string_len(&elem, ev->attrs[i].val,
                                          ev->attrs[i].vallen + 1))
                goto avro_fail;
        }
    } else if (ev->nattrs) {
        return tl_errf(err, errsz, TL_ERR,
                       "the schema has no attrs field for %zu attributes",
                       ev->nattrs);
    }
    return TL_OK;
avro_fail:
    return tl_errf(err, errsz, TL_ERR, "cannot build the Avro event: %s",
                   avro_strerror());
}

int tl_event_encode(tl_event_encoder *enc, const tl_event *ev,
                    const void **out, size_t *outlen, char *err, size_t errsz)
{
    int rc;
    /* Clears the previous event (maps would otherwise keep old keys). */
    avro_value_reset(&enc->value);
    if ((rc = enc_fill(enc, ev, err, errsz))) return rc;
    void *buf = enc->buf;
    rc = tl_avro_write(&enc->value, enc->out, &buf, &enc->cap, ENC_MAX_SIZE,
                       outlen);
    enc->buf = buf;
    if (rc)
        return tl_errf(err, errsz, TL_ERR, "cannot encode the event: %s",
                       avro_strerror());
    *out = enc->buf;
    return TL_OK;
}

int tl_avro_write(struct avro_value *value, struct avro_writer_t_ *w,
                  void **buf, size_t *cap, size_t max, size_t *outlen)
{
    for (;;) {
        avro_writer_memory_set_dest(w, *buf, (int64_t)*cap);
        int rc = avro_value_write(w, value);
        if (rc == 0) break;
        if (rc != ENOSPC || *cap >= max) return -1;
        *cap *= 2;
        *buf = tl_xrealloc(*buf, *cap);
    }
    *outlen = (size_t)avro_writer_tell(w);
    return 0;
}

/* ------------------------------------------------------------------------
 * Names for expressions
 */

enum var {
    V_EVENT_ID,
    V_CUSTOMER_ID,
    V_TS,
    V_CHANNEL,
    V_TYPE,
    V_ITEM,
    V_STORE,
    V_QUANTITY,
    V_AMOUNT,
    V_ATTRS,
    V__COUNT
};

_Static_assert(V__COUNT <= TL_EVENT_VAR_LIMIT, "event vars over the limit");

static const struct {
    const char *name;
    tl_type type;
} vars[V__COUNT] = {
    [V_EVENT_ID] = {"event_id", TL_T_STR},
    [V_CUSTOMER_ID] = {"customer_id", TL_T_STR},
    [V_TS] = {"ts", TL_T_NUM},
    [V_CHANNEL] = {"channel", TL_T_STR},
    [V_TYPE] = {"type", TL_T_STR},
    [V_ITEM] = {"item", TL_T_STR},
    [V_STORE] = {"store", TL_T_STR},
    [V_QUANTITY] = {"quantity", TL_T_NUM},
    [V_AMOUNT] = {"amount", TL_T_NUM},
    [V_ATTRS] = {"attrs", TL_T_STR},
};

int tl_event_resolve(void *ud, const char *name, const char *key,
                     uint32_t *var, tl_type *type)
{
    (void)ud;
    for (uint32_t i = 0; i < V__COUNT; i++) {
        if (strcmp(vars[i].name, name) != 0) continue;
        /* attrs only with a key, every other name only without one */
        if ((i == V_ATTRS) != (key != NULL)) return -1;
        *var = i;
        *type = vars[i].type;
        return 0;
    }
    return -1;
}

const char *tl_event_var_name(uint32_t var)
{
    return var < V__COUNT ? vars[var].name : NULL;
}

static void str_value(tl_value *out, const char *s, size_t len)
{
    if (!s) {
        *out = TL_VALUE_NULL;
        return;
    }
    out->type = TL_T_STR;
    out->u.str.ptr = s;
    out->u.str.len = len;
}

static void num_value(tl_value *out, int has, double v)
{
    if (!has) {
        *out = TL_VALUE_NULL;
        return;
    }
    out->type = TL_T_NUM;
    out->u.num = v;
}

void tl_event_fetch(void *ud, uint32_t var, const char *key, size_t keylen,
                    tl_value *out)
{
    const tl_event *ev = ud;
    const tl_attr *a;
    switch ((enum var)var) {
    case V_EVENT_ID:
        str_value(out, ev->event_id, ev->event_id ? strlen(ev->event_id) : 0);
        return;
    case V_CUSTOMER_ID:
        str_value(out, ev->customer_id, ev->customer_id_len);
        return;
    case V_TS: num_value(out, 1, (double)ev->ts); return;
    case V_CHANNEL: {
        const char *c = tl_channel_name(ev->channel);
        str_value(out, c, strlen(c));
        return;
    }
    case V_TYPE:
        str_value(out, ev->type, ev->type ? strlen(ev->type) : 0);
        return;
    case V_ITEM:
        str_value(out, ev->item, ev->item ? strlen(ev->item) : 0);
        return;
    case V_STORE:
        str_value(out, ev->store, ev->store ? strlen(ev->store) : 0);
        return;
    case V_QUANTITY: num_value(out, ev->has_quantity, ev->quantity); return;
    case V_AMOUNT: num_value(out, ev->has_amount, ev->amount); return;
    case V_ATTRS:
        a = key ? tl_event_attr(ev, key, keylen) : NULL;
        str_value(out, a ? a->val : NULL, a ? a->vallen : 0);
        return;
    case V__COUNT: break;
    }
    *out = TL_VALUE_NULL;
}
