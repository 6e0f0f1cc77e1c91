/*
 * event_avro — the Avro decoder: its set-up from the reader (and writer)
 * schema, the checks of the bytes every Avro message passes, and direct
 * decoding of events written with the reader's own schema.  A writer schema
 * that differs goes through Avro-C's resolver (event_avroc.c).
 */
#include <jansson.h>
#include <string.h>

#include "event_int.h"
#include "schemas.h"

/* ------------------------------------------------------------------------
 * Set-up
 */

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

/* The channel's reader schema, the writer's (which must be an enum too)
 * and the mapping between them. */
static int setup_channel(tl_event_decoder *d, json_t *rjson, int resolve,
                         char *err, size_t errsz)
{
    avro_schema_t rchan = tl_event_schema_field(d->reader, d->idx[F_CHANNEL]);
    d->wchannel = rchan;
    if (resolve) {
        int wi = tl_event_schema_index(d->writer, "channel");
        d->wchannel = tl_event_schema_field(d->writer, wi);
        if (!is_avro_enum(d->wchannel))
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "writer schema: field 'channel' must be an enum");
    }
    return build_channel_map(d, rchan, rjson, err, errsz);
}

/* ------------------------------------------------------------------------
 * Direct decoding: the common case of events written with the reader's own
 * schema is read straight from the bytes into the arena, without Avro-C's
 * generic values (avro_value_read allocates and frees a buffer for every
 * string and map key, tens of blocks per event).  The bytes were already
 * checked by tl_avro_check_input (every length, count, index and string),
 * so this walk only reads.  A writer schema that differs goes through
 * Avro-C's resolver instead (tl_event_avroc_decode).
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
    s = tl_avro_unlink(s);
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
        st->sch = tl_event_schema_field(d->reader, (int)i);
        st->f = tl_event_schema_find(name);
        st->null_br = -1;
        st->kind = DK_SKIP;
        if (st->f < 0) continue;
        int nb, vb;
        avro_schema_t base = tl_event_schema_nullable(st->sch, &nb, &vb);
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
    tl_event_attrs_sort(a, n, arena);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        /* The stable sort keeps equal keys in input order: the last wins. */
        if (i + 1 < n && tl_event_attr_cmp(a[i].key, a[i].keylen, a[i + 1].key,
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

/* Fields of the reader schema that are not in the bytes (the reader lacks
 * an optional field): what Avro-C's path gives them. */
static void fill_absent(tl_event_decoder *d, const int *seen, tl_arena *arena,
                        tl_event *ev)
{
    for (int f = 0; f < F__COUNT; f++) {
        if (seen[f]) continue;
        switch (tl_event_schema_fields[f].shape) {
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
        case SH_MAP: tl_event_default_attrs(d, arena, ev); break;
        }
    }
}

static int decode_step(tl_event_decoder *d, const dstep *st, rd *r,
                       tl_arena *arena, tl_event *ev, char *err, size_t errsz)
{
    int64_t v;
    uint64_t bits;
    if (st->f < 0) /* a field tailor does not read: 0 or -1 */
        return tl_avro_check_skip(st->sch, &r->p, r->end, err, errsz);
    if (st->null_br >= 0) {
        if (rd_varint(r, &v)) return -1;
        if (v == st->null_br) {
            if (tl_event_schema_fields[st->f].shape == SH_OPT_NUM)
                put_num(ev, st->f, 0, 0);
            else
                put_str(ev, st->f, NULL, 0);
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
            /* Unreachable after tl_avro_check_input; kept as a guard. */
            tl_errf(err, errsz, 0, "cannot read field '%s' of the Avro event",
                    avro_schema_record_field_name(d->reader, (int)i));
            return TL_REJECT_DECODE;
        }
        if (st->f >= 0) seen[st->f] = 1;
    }
    fill_absent(d, seen, arena, ev);
    if (!ev->event_id) ev->event_id = "";
    if (!ev->type) ev->type = "";
    return tl_event_check(ev, "customer_id is empty", d->min_ts, d->max_ts,
                          err, errsz);
}

/* ------------------------------------------------------------------------
 * The decoder's Avro part
 */

/* Parses the reader schema into *configured and its JSON into *rjson, and
 * checks the event's fields in it. */
static int load_reader(const char *reader_json, avro_schema_t *configured,
                       json_t **rjson, char *err, size_t errsz)
{
    json_error_t jerr;
    if (tl_event_schema_parse(reader_json, "reader", configured, err, errsz))
        return TL_ERR_CONFIG;
    *rjson = json_loads(reader_json, 0, &jerr);
    if (!*rjson) /* Avro-C accepted it, so this is unexpected */
        return tl_errf(err, errsz, TL_ERR_CONFIG, "reader schema: %s",
                       jerr.text);
    return tl_event_schema_check_reader(*configured, err, errsz);
}

int tl_event_avro_init(tl_event_decoder *d, const char *reader_json,
                       const char *writer_json, char *err, size_t errsz)
{
    json_t *rjson = NULL;
    avro_schema_t configured = NULL;
    int rc = TL_ERR_CONFIG;

    if (!reader_json) reader_json = tl_schema_interaction_event;
    if (load_reader(reader_json, &configured, &rjson, err, errsz)) goto fail;
    if (writer_json && tl_event_schema_parse(writer_json, "writer",
                                             &d->writer, err, errsz))
        goto fail;
    if (d->writer && tl_event_avroc_reader(d, rjson, err, errsz)) goto fail;
    if (!d->reader) {
        d->reader = configured;
        configured = NULL;
    }
    if (!d->writer) d->writer = avro_schema_incref(d->reader);
    if (tl_event_avroc_values(d, writer_json != NULL, err, errsz)) goto fail;

    for (int f = 0; f < F__COUNT; f++)
        d->idx[f] =
            tl_event_schema_index(d->reader, tl_event_schema_fields[f].name);
    if (d->idx[F_CHANNEL] >= 0 &&
        setup_channel(d, rjson, writer_json != NULL, err, errsz))
        goto fail;

    if (!writer_json) build_plan(d);
    d->in = avro_reader_memory(NULL, 0);
    if (!d->in) {
        tl_errf(err, errsz, TL_ERR_NOMEM, "cannot create an Avro reader");
        goto fail;
    }
    rc = TL_OK;
fail:
    if (configured) avro_schema_decref(configured);
    json_decref(rjson);
    return rc;
}

void tl_event_avro_fini(tl_event_decoder *d)
{
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
}

tl_reject tl_event_avro_decode(tl_event_decoder *d, const void *buf,
                               size_t len, tl_arena *arena, tl_event *ev,
                               char *err, size_t errsz)
{
    size_t used;
    if (len == 0) {
        tl_errf(err, errsz, 0, "empty message");
        return TL_REJECT_DECODE;
    }
    /* Text and the attrs count are checked here, on the bytes: Avro-C
     * would copy invalid text as is and allocate for every entry. */
    if (tl_avro_check_input(d->writer, buf, len, TL_EVENT_MAX_ATTRS, &used,
                            err, errsz))
        return TL_REJECT_DECODE;
    if (used != len) {
        tl_errf(err, errsz, 0, "%zu trailing bytes after the event",
                len - used);
        return TL_REJECT_DECODE;
    }
    if (d->plan) return decode_direct(d, buf, len, arena, ev, err, errsz);
    return tl_event_avroc_decode(d, buf, len, arena, ev, err, errsz);
}
