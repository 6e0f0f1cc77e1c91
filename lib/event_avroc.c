/*
 * event_avroc — decoding through Avro-C's resolver, for events written with
 * a writer schema that differs from the reader's: the reader schema the
 * resolver can take, the reader's defaults for fields the writer lacks, and
 * the event read out of Avro-C's generic value.
 */
#include <string.h>

#include "event_int.h"

/* ------------------------------------------------------------------------
 * Reading values out of Avro-C's generic values
 */

/* A union's value is its current branch's (stored in *branch). */
static int current_branch(avro_value_t **v, avro_value_t *branch)
{
    if (avro_value_get_type(*v) != AVRO_UNION) return 0;
    if (avro_value_get_current_branch(*v, branch)) return -1;
    *v = branch;
    return 0;
}

static int value_str(avro_value_t *v, const char **s, size_t *len)
{
    avro_value_t branch;
    if (current_branch(&v, &branch)) return -1;
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
    if (current_branch(&v, &branch)) return -1;
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
 * Set-up
 */

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
    tl_event_attrs_isort(d->def_attrs, n);
    return 0;
}

/* Takes the reader's default for field f (absent from the writer). */
static int set_default(tl_event_decoder *d, enum field f, json_t *def)
{
    tl_channel ch;
    enum shape sh = tl_event_schema_fields[f].shape;
    if (!def) return -1;
    switch (sh) {
    case SH_STR:
    case SH_OPT_STR:
        if (json_is_null(def) && sh == SH_OPT_STR) return 0;
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

/* Drops the reader field at i of rfields, keeping its default; the writer
 * lacks it. */
static int drop_field(tl_event_decoder *d, json_t *rfields, size_t i,
                      const char *name, char *err, size_t errsz)
{
    json_t *def = json_object_get(json_array_get(rfields, i), "default");
    if (!def)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "writer schema lacks reader field '%s', which has no "
                       "default",
                       name);
    int f = tl_event_schema_find(name);
    if (f >= 0 && set_default(d, (enum field)f, def))
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "reader schema: unusable default for field '%s'",
                       name);
    json_array_remove(rfields, i);
    return TL_OK;
}

/* Avro-C's resolver refuses reader fields the writer lacks (it has no
 * support for defaults), so read with a reader schema without them and fill
 * in their defaults ourselves. */
int tl_event_avroc_reader(tl_event_decoder *d, json_t *rjson, char *err,
                          size_t errsz)
{
    json_t *rfields = json_object_get(rjson, "fields");
    size_t i = 0;
    int dropped = 0;
    while (i < json_array_size(rfields)) {
        json_t *f = json_array_get(rfields, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name || tl_event_schema_index(d->writer, name) >= 0) {
            i++;
            continue;
        }
        if (drop_field(d, rfields, i, name, err, errsz)) return TL_ERR_CONFIG;
        dropped = 1;
    }
    if (!dropped) return TL_OK;
    char *eff_json = json_dumps(rjson, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!eff_json)
        return tl_errf(err, errsz, TL_ERR_NOMEM,
                       "reader schema: out of memory");
    int rc = tl_event_schema_parse(eff_json, "reader", &d->reader, err, errsz);
    free(eff_json);
    return rc;
}

int tl_event_avroc_values(tl_event_decoder *d, int resolve, char *err,
                          size_t errsz)
{
    if (resolve) {
        d->resolver = avro_resolved_writer_new(d->writer, d->reader);
        if (!d->resolver)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "writer schema does not resolve to the reader "
                           "schema: %s",
                           avro_strerror());
    }
    d->klass = avro_generic_class_from_schema(d->reader);
    if (!d->klass || avro_generic_value_new(d->klass, &d->value))
        return tl_errf(err, errsz, TL_ERR_CONFIG, "reader schema: %s",
                       avro_strerror());
    d->target = &d->value;
    if (d->resolver) {
        if (avro_resolved_writer_new_value(d->resolver, &d->resolved))
            return tl_errf(err, errsz, TL_ERR_CONFIG, "writer schema: %s",
                           avro_strerror());
        avro_resolved_writer_set_dest(&d->resolved, &d->value);
        d->target = &d->resolved;
    }
    return TL_OK;
}

/* ------------------------------------------------------------------------
 * Decoding
 */

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
        tl_event_default_attrs(d, arena, ev);
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
    tl_event_attrs_sort(a, n, arena);
    ev->attrs = a;
    ev->nattrs = n;
    return 0;
}

/* The channel: the writer's enum index mapped by symbol name; -2 with err
 * filled for a symbol the reader does not know. */
static int take_channel(tl_event_decoder *d, tl_event *ev, char *err,
                        size_t errsz)
{
    avro_value_t v;
    int e, got = get_field(d, F_CHANNEL, &v);
    if (got < 0) return -1;
    if (got == 0) {
        ev->channel = d->def_channel;
        return 0;
    }
    if (avro_value_get_enum(&v, &e) || e < 0 || (size_t)e >= d->nchan)
        return -1;
    if (d->chan_map[e] < 0) {
        tl_errf(err, errsz, 0,
                "channel '%s' is not a symbol of the reader schema",
                avro_schema_enum_get(d->wchannel, e));
        return -2;
    }
    ev->channel = (tl_channel)d->chan_map[e];
    return 0;
}

tl_reject tl_event_avroc_decode(tl_event_decoder *d, const void *buf,
                                size_t len, tl_arena *arena, tl_event *ev,
                                char *err, size_t errsz)
{
    avro_value_t v;
    int got, rc;
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
    if ((rc = take_channel(d, ev, err, errsz)) == -2) return TL_REJECT_DECODE;
    if (rc) goto bad;
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
    return tl_event_check(ev, "customer_id is empty", d->min_ts, d->max_ts,
                          err, errsz);
bad:
    tl_errf(err, errsz, 0, "cannot read field '%s' of the Avro event", what);
    return TL_REJECT_DECODE;
}
