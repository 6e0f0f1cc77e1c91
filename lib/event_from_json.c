/*
 * event_from_json — JSON events (one object, the line format of the
 * datasets): tl_event_from_json, for the JSON decoder and `tailorctl
 * produce`; ts in epoch milliseconds or as an ISO 8601 string.
 *
 * This is jansson's reader, the reference: tl_event_json tries the direct
 * one (event_json_direct.c, no allocation) first and comes here for
 * anything it does not take, errors included, so messages are jansson's.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "event_int.h"

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

/* One attribute: a string verbatim, anything else its compact JSON text
 * (b is scratch). */
static void json_attr_set(tl_attr *at, const char *key, json_t *val,
                          tl_arena *arena, tl_buf *b)
{
    at->keylen = strlen(key);
    at->key = tl_arena_strndup(arena, key, at->keylen);
    if (json_is_string(val)) {
        at->vallen = json_string_length(val);
        at->val = tl_arena_strndup(arena, json_string_value(val), at->vallen);
        return;
    }
    b->len = 0;
    sb_json(b, val);
    at->vallen = b->len;
    at->val = tl_arena_strndup(arena, b->s ? b->s : "", b->len);
}

/* attrs, and the top-level fields the event does not have (a producer's
 * {"page": "home"} is attrs["page"], as a user expects, rather than lost);
 * an attrs entry of the same name wins.  null values are dropped. */
static tl_reject json_attrs(json_t *root, tl_arena *arena, tl_event *ev,
                            char *err, size_t errsz)
{
    json_t *obj = json_object_get(root, "attrs"), *val;
    const char *key;
    tl_buf b = {0};
    size_t n = 0;
    ev->attrs = NULL;
    ev->nattrs = 0;
    if (obj && json_is_null(obj)) obj = NULL;
    if (obj && !json_is_object(obj))
        return json_fail(err, errsz, "field '%s' must be an object", "attrs");
    if (obj && json_object_size(obj) > TL_EVENT_MAX_ATTRS) {
        tl_errf(err, errsz, 0, "field 'attrs' has %zu entries, more than %d",
                json_object_size(obj), TL_EVENT_MAX_ATTRS);
        return TL_REJECT_DECODE;
    }
    size_t max = (obj ? json_object_size(obj) : 0) + json_object_size(root);
    tl_attr *a = tl_arena_alloc(arena, max * sizeof *a);
    if (obj)
        json_object_foreach(obj, key, val)
            if (!json_is_null(val)) json_attr_set(&a[n++], key, val, arena, &b);
    json_object_foreach(root, key, val)
        if (!json_is_null(val) && tl_event_schema_find(key) < 0 &&
            !(obj && json_object_get(obj, key)))
            json_attr_set(&a[n++], key, val, arena, &b);
    tl_buf_free(&b);
    tl_event_attrs_sort(a, n, arena);
    ev->attrs = a;
    ev->nattrs = n;
    return TL_REJECT_NONE;
}

/* ts: epoch milliseconds, or an ISO 8601 time in a string (what people
 * and many producers write; a time without its offset is refused, as it
 * means nothing without a zone). */
static tl_reject json_ts(json_t *root, tl_event *ev, char *err, size_t errsz)
{
    json_t *v = json_object_get(root, "ts");
    if (!v) return json_fail(err, errsz, "missing field '%s'", "ts");
    if (json_is_integer(v)) {
        ev->ts = json_integer_value(v);
        return TL_REJECT_NONE;
    }
    if (json_is_string(v) &&
        !tl_parse_time(json_string_value(v), json_string_length(v), &ev->ts))
        return TL_REJECT_NONE;
    char show[TL_SHOWSZ];
    if (json_is_string(v))
        tl_errf(err, errsz, 0,
                "field 'ts': \"%s\" is not an ISO 8601 time like "
                "2025-03-11T14:33:22Z or 2025-03-11T15:33:22.250+01:00 "
                "(date, time and offset are required)",
                tl_fmt_show(json_string_value(v), json_string_length(v),
                            show));
    else
        tl_errf(err, errsz, 0,
                "field 'ts' must be an integer (epoch milliseconds) or an "
                "ISO 8601 time in a string");
    return TL_REJECT_DECODE;
}

tl_reject tl_event_from_json(const char *json, size_t len, tl_arena *arena,
                             tl_event *ev, char *err, size_t errsz)
{
    return tl_event_json(json, len, arena, ev, TL_EVENT_MIN_TS,
                         TL_EVENT_MAX_TS, err, errsz);
}

#define NO_CUSTOMER "customer_id is missing or empty"

tl_reject tl_event_json(const char *json, size_t len, tl_arena *arena,
                        tl_event *ev, int64_t min_ts, int64_t max_ts,
                        char *err, size_t errsz)
{
    memset(ev, 0, sizeof *ev);
    if (!tl_event_json_direct(json, len, arena, ev))
        return tl_event_check(ev, NO_CUSTOMER, min_ts, max_ts, err, errsz);
    return tl_event_json_tree(json, len, arena, ev, min_ts, max_ts, err,
                              errsz);
}

tl_reject tl_event_json_tree(const char *json, size_t len, tl_arena *arena,
                             tl_event *ev, int64_t min_ts, int64_t max_ts,
                             char *err, size_t errsz)
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
    if ((r = json_ts(root, ev, err, errsz))) goto fail;
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
    r = tl_event_check(ev, NO_CUSTOMER, min_ts, max_ts, err, errsz);
fail:
    json_decref(root);
    return r;
}
