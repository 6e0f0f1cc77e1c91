#include "trigger.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "schemas.h"

void tl_trigger_make_id(char out[TL_TRIGGER_ID_LEN + 1], const char *topic,
                        int32_t partition, int64_t offset, const char *rule)
{
    char num[24];
    int n;
    uint64_t h = TL_FNV_OFFSET;
    if (!topic) topic = "";
    if (!rule) rule = "";
    /* Each part with its NUL, so ("ab","c") and ("a","bc") differ. */
    h = tl_fnv1a(h, topic, strlen(topic) + 1);
    n = snprintf(num, sizeof num, "%" PRId32, partition);
    h = tl_fnv1a(h, num, (size_t)n + 1);
    n = snprintf(num, sizeof num, "%" PRId64, offset);
    h = tl_fnv1a(h, num, (size_t)n + 1);
    h = tl_fnv1a(h, rule, strlen(rule));
    snprintf(out, TL_TRIGGER_ID_LEN + 1, "%016" PRIx64, h);
}

/* ------------------------------------------------------------------------
 * Codec
 */

enum tfield {
    T_ID,
    T_RULE,
    T_CUSTOMER_ID,
    T_TS,
    T_CAUSE,
    T_CHANNEL,
    T_MESSAGE,
    T_ATTRS,
    T_EXPLAIN,
    T_HOLDOUT,
    T__COUNT
};

static const struct {
    const char *name;
    avro_type_t type; /* for maps: a map of strings */
    const char *type_name;
} tfields[T__COUNT] = {
    [T_ID] = {"trigger_id", AVRO_STRING, "string"},
    [T_RULE] = {"rule", AVRO_STRING, "string"},
    [T_CUSTOMER_ID] = {"customer_id", AVRO_STRING, "string"},
    [T_TS] = {"ts", AVRO_INT64, "long"},
    [T_CAUSE] = {"cause_event_id", AVRO_STRING, "string"},
    [T_CHANNEL] = {"channel", AVRO_ENUM, "enum"},
    [T_MESSAGE] = {"message", AVRO_STRING, "string"},
    [T_ATTRS] = {"attrs", AVRO_MAP, "map of string"},
    [T_EXPLAIN] = {"explain", AVRO_MAP, "map of string"},
    [T_HOLDOUT] = {"holdout", AVRO_BOOLEAN, "boolean"},
};

struct tl_trigger_codec {
    avro_schema_t schema;
    avro_schema_t channel; /* the channel enum */
    avro_value_iface_t *klass;
    avro_value_t value; /* reused for every encode and decode */
    avro_writer_t out;
    avro_reader_t in;
    char *buf;
    size_t cap;
    size_t idx[T__COUNT];
    /* Direct encoding, when the schema has exactly our fields: their order
     * in the record and the enum index of each channel (-1: absent). */
    int direct;
    enum tfield order[T__COUNT];
    int chan_idx[TL_CH__COUNT];
};

/* Output larger than this is a runaway trigger, not something to produce. */
#define TRIGGER_MAX_SIZE ((size_t)64 << 20)

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (s && is_avro_link(s)) s = avro_schema_link_target(s);
    return s;
}

tl_trigger_codec *tl_trigger_codec_new(const char *schema_json, char *err,
                                       size_t errsz)
{
    tl_trigger_codec *c = tl_xcalloc(1, sizeof *c);
    if (!schema_json) schema_json = tl_schema_trigger;
    if (avro_schema_from_json_length(schema_json, strlen(schema_json),
                                     &c->schema)) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "trigger schema: %s",
                avro_strerror());
        goto fail;
    }
    if (!is_avro_record(c->schema)) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "trigger schema: must be a record");
        goto fail;
    }
    for (int f = 0; f < T__COUNT; f++) {
        int i = avro_schema_record_field_get_index(c->schema, tfields[f].name);
        avro_schema_t fs =
            i < 0 ? NULL
                  : unlink_schema(
                        avro_schema_record_field_get_by_index(c->schema, i));
        if (!fs || avro_typeof(fs) != tfields[f].type ||
            (is_avro_map(fs) &&
             !is_avro_string(unlink_schema(avro_schema_map_values(fs))))) {
            tl_errf(err, errsz, TL_ERR_CONFIG,
                    "trigger schema: needs field '%s' of type %s",
                    tfields[f].name, tfields[f].type_name);
            goto fail;
        }
        if (f == T_CHANNEL) c->channel = fs;
        c->idx[f] = (size_t)i;
    }
    if (avro_schema_record_size(c->schema) == T__COUNT) {
        c->direct = 1;
        for (int f = 0; f < T__COUNT; f++) c->order[c->idx[f]] = (enum tfield)f;
    }
    for (int ch = 0; ch < TL_CH__COUNT; ch++)
        c->chan_idx[ch] = avro_schema_enum_get_by_name(
            c->channel, tl_channel_name((tl_channel)ch));
    c->klass = avro_generic_class_from_schema(c->schema);
    if (!c->klass || avro_generic_value_new(c->klass, &c->value)) {
        tl_errf(err, errsz, TL_ERR_CONFIG, "trigger schema: %s",
                avro_strerror());
        goto fail;
    }
    c->cap = 512;
    c->buf = tl_xmalloc(c->cap);
    c->out = avro_writer_memory(c->buf, (int64_t)c->cap);
    c->in = avro_reader_memory(NULL, 0);
    if (!c->out || !c->in) {
        tl_errf(err, errsz, TL_ERR_NOMEM, "cannot create Avro reader/writer");
        goto fail;
    }
    return c;
fail:
    tl_trigger_codec_free(c);
    return NULL;
}

void tl_trigger_codec_free(tl_trigger_codec *c)
{
    if (!c) return;
    if (c->in) avro_reader_free(c->in);
    if (c->out) avro_writer_free(c->out);
    if (c->value.self) avro_value_decref(&c->value);
    if (c->klass) avro_value_iface_decref(c->klass);
    if (c->schema) avro_schema_decref(c->schema);
    free(c->buf);
    free(c);
}

static int set_str(tl_trigger_codec *c, enum tfield f, const char *s)
{
    avro_value_t v;
    if (!s) s = "";
    if (avro_value_get_by_index(&c->value, c->idx[f], &v, NULL)) return -1;
    return avro_value_set_string(&v, s) ? -1 : 0;
}

static int set_map(tl_trigger_codec *c, enum tfield f, const tl_attr *a,
                   size_t n)
{
    avro_value_t map;
    if (avro_value_get_by_index(&c->value, c->idx[f], &map, NULL)) return -1;
    for (size_t i = 0; i < n; i++) {
        avro_value_t elem;
        if (avro_value_add(&map, a[i].key ? a[i].key : "", &elem, NULL,
                           NULL) ||
            avro_value_set_string(&elem, a[i].val ? a[i].val : ""))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Direct encoding: the bytes Avro-C would write for the same trigger,
 * written straight into the codec's buffer.  Avro-C's generic value copies
 * every string it is given (a few allocations per trigger); this allocates
 * only when the buffer must grow.
 */

typedef struct wbuf {
    tl_trigger_codec *c;
    size_t n;
} wbuf;

static int w_room(wbuf *w, size_t more)
{
    if (more > TRIGGER_MAX_SIZE - w->n) return -1;
    if (w->n + more > w->c->cap) {
        size_t cap = w->c->cap ? w->c->cap : 512;
        while (cap < w->n + more) cap *= 2;
        w->c->buf = tl_xrealloc(w->c->buf, cap);
        w->c->cap = cap;
    }
    return 0;
}

static int w_long(wbuf *w, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    if (w_room(w, 10)) return -1;
    unsigned char *p = (unsigned char *)w->c->buf + w->n;
    size_t k = 0;
    while (z > 0x7f) {
        p[k++] = (unsigned char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    p[k++] = (unsigned char)z;
    w->n += k;
    return 0;
}

static int w_str(wbuf *w, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (w_long(w, (int64_t)len) || w_room(w, len)) return -1;
    if (len) memcpy(w->c->buf + w->n, s, len);
    w->n += len;
    return 0;
}

/* A map as Avro-C writes it: one block; a key given twice appears once, at
 * its first place, with its last value. */
static int w_map(wbuf *w, const tl_attr *a, size_t n)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        const char *k = a[i].key ? a[i].key : "";
        while (j < i && strcmp(a[j].key ? a[j].key : "", k)) j++;
        distinct += j == i;
    }
    if (distinct && w_long(w, (int64_t)distinct)) return -1;
    for (size_t i = 0; i < n; i++) {
        const char *k = a[i].key ? a[i].key : "";
        size_t j = 0, last = i;
        while (j < i && strcmp(a[j].key ? a[j].key : "", k)) j++;
        if (j < i) continue;
        for (j = i + 1; j < n; j++)
            if (!strcmp(a[j].key ? a[j].key : "", k)) last = j;
        if (w_str(w, k) || w_str(w, a[last].val ? a[last].val : ""))
            return -1;
    }
    return w_long(w, 0);
}

static int encode_direct(tl_trigger_codec *c, const tl_trigger *t, int e,
                         size_t *outlen)
{
    wbuf w = {c, 0};
    for (int i = 0; i < T__COUNT; i++) {
        int rc = 0;
        switch (c->order[i]) {
        case T_ID: rc = w_str(&w, t->id); break;
        case T_RULE: rc = w_str(&w, t->rule); break;
        case T_CUSTOMER_ID: rc = w_str(&w, t->customer_id); break;
        case T_TS: rc = w_long(&w, t->ts); break;
        case T_CAUSE: rc = w_str(&w, t->cause_event_id); break;
        case T_CHANNEL: rc = w_long(&w, e); break;
        case T_MESSAGE: rc = w_str(&w, t->message); break;
        case T_ATTRS: rc = w_map(&w, t->attrs, t->nattrs); break;
        case T_EXPLAIN: rc = w_map(&w, t->explain, t->nexplain); break;
        case T_HOLDOUT:
            if (!(rc = w_room(&w, 1))) c->buf[w.n++] = t->holdout ? 1 : 0;
            break;
        case T__COUNT: break;
        }
        if (rc) return -1;
    }
    *outlen = w.n;
    return 0;
}

int tl_trigger_encode(tl_trigger_codec *c, const tl_trigger *t,
                      const void **out, size_t *outlen, char *err,
                      size_t errsz)
{
    avro_value_t v;
    int rc;
    const char *sym = tl_channel_name(t->channel);
    int e = (unsigned)t->channel < TL_CH__COUNT ? c->chan_idx[t->channel] : -1;
    if (e < 0)
        return tl_errf(err, errsz, TL_ERR,
                       "channel '%s' is not a symbol of the trigger schema",
                       sym);
    if (c->direct) {
        if (encode_direct(c, t, e, outlen))
            return tl_errf(err, errsz, TL_ERR,
                           "cannot encode the trigger: more than %zu bytes",
                           TRIGGER_MAX_SIZE);
        *out = c->buf;
        return TL_OK;
    }
    /* Clears the previous trigger (maps would otherwise keep old keys). */
    avro_value_reset(&c->value);
    if (set_str(c, T_ID, t->id) || set_str(c, T_RULE, t->rule) ||
        set_str(c, T_CUSTOMER_ID, t->customer_id) ||
        set_str(c, T_CAUSE, t->cause_event_id) ||
        set_str(c, T_MESSAGE, t->message) ||
        avro_value_get_by_index(&c->value, c->idx[T_TS], &v, NULL) ||
        avro_value_set_long(&v, t->ts) ||
        avro_value_get_by_index(&c->value, c->idx[T_CHANNEL], &v, NULL) ||
        avro_value_set_enum(&v, e) ||
        set_map(c, T_ATTRS, t->attrs, t->nattrs) ||
        set_map(c, T_EXPLAIN, t->explain, t->nexplain) ||
        avro_value_get_by_index(&c->value, c->idx[T_HOLDOUT], &v, NULL) ||
        avro_value_set_boolean(&v, t->holdout ? 1 : 0))
        return tl_errf(err, errsz, TL_ERR, "cannot build the trigger: %s",
                       avro_strerror());
    void *buf = c->buf;
    rc = tl_avro_write(&c->value, c->out, &buf, &c->cap, TRIGGER_MAX_SIZE,
                       outlen);
    c->buf = buf;
    if (rc)
        return tl_errf(err, errsz, TL_ERR, "cannot encode the trigger: %s",
                       avro_strerror());
    *out = c->buf;
    return TL_OK;
}

static int get_str(tl_trigger_codec *c, enum tfield f, tl_arena *arena,
                   const char **out)
{
    avro_value_t v;
    const char *s;
    size_t size;
    if (avro_value_get_by_index(&c->value, c->idx[f], &v, NULL) ||
        avro_value_get_string(&v, &s, &size))
        return -1;
    /* Avro-C's size counts the NUL terminator. */
    *out = tl_arena_strndup(arena, s ? s : "", s && size ? size - 1 : 0);
    return 0;
}

static int get_map(tl_trigger_codec *c, enum tfield f, tl_arena *arena,
                   const tl_attr **out, size_t *n)
{
    avro_value_t map;
    size_t count;
    if (avro_value_get_by_index(&c->value, c->idx[f], &map, NULL) ||
        avro_value_get_size(&map, &count))
        return -1;
    tl_attr *a = tl_arena_alloc(arena, count * sizeof *a);
    for (size_t i = 0; i < count; i++) {
        avro_value_t elem;
        const char *key, *s;
        size_t size;
        if (avro_value_get_by_index(&map, i, &elem, &key) ||
            avro_value_get_string(&elem, &s, &size))
            return -1;
        a[i].keylen = strlen(key);
        a[i].key = tl_arena_strndup(arena, key, a[i].keylen);
        a[i].vallen = s && size ? size - 1 : 0;
        a[i].val = tl_arena_strndup(arena, s ? s : "", a[i].vallen);
    }
    *out = a;
    *n = count;
    return 0;
}

int tl_trigger_decode(tl_trigger_codec *c, const void *buf, size_t len,
                      tl_arena *arena, tl_trigger *t, char *err, size_t errsz)
{
    avro_value_t v;
    const char *id;
    int e;
    size_t used;
    int rc;

    memset(t, 0, sizeof *t);
    /* Bounds first: Avro-C leaks and over-allocates on bad lengths. */
    if ((rc = tl_avro_check(c->schema, buf, len, &used, err, errsz)))
        return rc;
    if (used != len)
        return tl_errf(err, errsz, TL_ERR_DECODE,
                       "%zu trailing bytes after the trigger", len - used);
    avro_reader_memory_set_source(c->in, buf, (int64_t)len);
    if (avro_value_read(c->in, &c->value))
        return tl_errf(err, errsz, TL_ERR_DECODE,
                       "cannot decode the trigger: %s", avro_strerror());
    if (get_str(c, T_ID, arena, &id) ||
        get_str(c, T_RULE, arena, &t->rule) ||
        get_str(c, T_CUSTOMER_ID, arena, &t->customer_id) ||
        get_str(c, T_CAUSE, arena, &t->cause_event_id) ||
        get_str(c, T_MESSAGE, arena, &t->message) ||
        avro_value_get_by_index(&c->value, c->idx[T_TS], &v, NULL) ||
        avro_value_get_long(&v, &t->ts) ||
        avro_value_get_by_index(&c->value, c->idx[T_CHANNEL], &v, NULL) ||
        avro_value_get_enum(&v, &e) ||
        get_map(c, T_ATTRS, arena, &t->attrs, &t->nattrs) ||
        get_map(c, T_EXPLAIN, arena, &t->explain, &t->nexplain) ||
        avro_value_get_by_index(&c->value, c->idx[T_HOLDOUT], &v, NULL) ||
        avro_value_get_boolean(&v, &t->holdout))
        return tl_errf(err, errsz, TL_ERR_DECODE,
                       "cannot read the trigger: %s", avro_strerror());
    snprintf(t->id, sizeof t->id, "%s", id);
    /* Avro-C stores enum indexes unchecked: map by symbol, never by index. */
    const char *sym = e >= 0 && e < avro_schema_enum_number_of_symbols(
                                        c->channel)
                          ? avro_schema_enum_get(c->channel, e)
                          : NULL;
    if (!sym || tl_channel_parse(sym, strlen(sym), &t->channel))
        return tl_errf(err, errsz, TL_ERR_DECODE,
                       "trigger channel index %d is not a known channel", e);
    return TL_OK;
}

/* ------------------------------------------------------------------------
 * JSON
 */

/* A JSON string; bytes that are not UTF-8 (jansson refuses them, and Avro-C
 * does not check) become U+FFFD so that one bad attribute cannot lose the
 * whole trigger. */
static json_t *jstr(const char *s)
{
    if (!s) s = "";
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s), o = 0;
    char *fixed = tl_xmalloc(n * 3 + 1);
    for (size_t i = 0; i < n;) {
        size_t l = tl_utf8_seq((const unsigned char *)s + i, n - i);
        if (l) {
            memcpy(fixed + o, s + i, l);
            o += l;
            i += l;
        } else {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    fixed[o] = '\0';
    j = json_string(fixed);
    free(fixed);
    return j;
}

static json_t *jobj(const tl_attr *a, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) {
        json_t *k = jstr(a[i].key); /* keys too must be UTF-8 */
        json_t *v = jstr(a[i].val);
        int bad = !k || !v;
        if (bad)
            json_decref(v);
        else /* steals v, also on failure */
            bad = json_object_set_new(o, json_string_value(k), v) != 0;
        json_decref(k);
        if (bad) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

char *tl_trigger_to_json(const tl_trigger *t)
{
    char *s = NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    if (json_object_set_new(o, "trigger_id", jstr(t->id)) ||
        json_object_set_new(o, "rule", jstr(t->rule)) ||
        json_object_set_new(o, "customer_id", jstr(t->customer_id)) ||
        json_object_set_new(o, "ts", json_integer(t->ts)) ||
        json_object_set_new(o, "cause_event_id", jstr(t->cause_event_id)) ||
        json_object_set_new(o, "channel", jstr(tl_channel_name(t->channel))) ||
        json_object_set_new(o, "message", jstr(t->message)) ||
        json_object_set_new(o, "attrs", jobj(t->attrs, t->nattrs)) ||
        json_object_set_new(o, "explain", jobj(t->explain, t->nexplain)) ||
        json_object_set_new(o, "holdout", json_boolean(t->holdout)))
        goto fail;
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
fail:
    json_decref(o);
    return s;
}

/* ---- building a trigger from a firing rule ------------------------------ */

/* A template rendered into the arena. */
static const char *render(tl_arena *a, const tl_template *t, tl_eval_ctx *ctx)
{
    size_t n = tl_template_render(t, tl_eval_fetch, ctx, NULL, 0);
    char *s = tl_arena_alloc(a, n + 1);
    tl_template_render(t, tl_eval_fetch, ctx, s, n + 1);
    return s;
}

typedef struct explainer {
    tl_arena *arena;
    tl_eval_ctx *ctx;
    tl_attr *out; /* NULL while counting */
    size_t n;
} explainer;

static const char *var_name(explainer *x, uint32_t var, const char *key)
{
    if (var >= TL_EVENT_VAR_LIMIT)
        return x->ctx->features[var - TL_EVENT_VAR_LIMIT].name;
    if (!key) return tl_event_var_name(var);
    size_t n = strlen(key) + 16;
    char *s = tl_arena_alloc(x->arena, n);
    snprintf(s, n, "%s[\"%s\"]", tl_event_var_name(var), key);
    return s;
}

static void explain_var(void *ud, uint32_t var, const char *key)
{
    explainer *x = ud;
    if (!x->out) {
        x->n++;
        return;
    }
    const char *name = var_name(x, var, key);
    tl_value v;
    tl_eval_fetch(x->ctx, var, key, key ? strlen(key) : 0, &v);
    /* JSON text: a null, a list with a comma in an item, and a string
     * that spells a number stay what they were ("null" vs "\"null\""). */
    size_t n = tl_value_format_json(&v, NULL, 0);
    char *s = tl_arena_alloc(x->arena, n + 1);
    tl_value_format_json(&v, s, n + 1);
    x->out[x->n++] = (tl_attr){name, s, strlen(name), n};
}

void tl_trigger_build(tl_trigger *t, const tl_firing *fi, const tl_event *ev,
                      const char *topic, int32_t partition, int64_t offset,
                      tl_eval_ctx *ctx, tl_arena *arena)
{
    const tl_rule *r = fi->rule;
    memset(t, 0, sizeof *t);
    tl_trigger_make_id(t->id, topic, partition, offset, r->name);
    t->rule = r->name;
    t->customer_id = ev->customer_id;
    t->ts = ev->ts;
    t->cause_event_id = ev->event_id;
    t->channel = fi->channel;
    t->holdout = fi->holdout;
    t->message = render(arena, &r->message, ctx);
    if (r->nattrs) {
        tl_attr *a = tl_arena_alloc(arena, r->nattrs * sizeof *a);
        for (size_t i = 0; i < r->nattrs; i++) {
            const char *v = render(arena, &r->attrs[i].value, ctx);
            a[i] = (tl_attr){r->attrs[i].key, v, strlen(r->attrs[i].key),
                             strlen(v)};
        }
        t->attrs = a;
        t->nattrs = r->nattrs;
    }
    if (r->cond) {
        explainer x = {arena, ctx, NULL, 0};
        tl_expr_vars(r->cond, explain_var, &x);
        x.out = tl_arena_alloc(arena, (x.n ? x.n : 1) * sizeof *x.out);
        x.n = 0;
        tl_expr_vars(r->cond, explain_var, &x);
        t->explain = x.out;
        t->nexplain = x.n;
    }
}
