/*
 * fuzz_common — helpers shared by the libFuzzer targets in fuzz/: checks of
 * a decoded event's invariants and an event comparison.  A broken invariant
 * aborts (libFuzzer reports it as a crash, with the input saved).
 *
 * Header-only (static functions) so that every target is one .c file.
 */
#ifndef TL_FUZZ_COMMON_H
#define TL_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Results stored here are computed (reads are checked by ASan) even though
 * nothing uses them. */
static volatile size_t fuzz_sink;

static inline int fuzz_str_eq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

/* Same bit pattern, or both NaN (any NaN), or 0 == -0. */
static inline int fuzz_num_eq(double a, double b)
{
    return a == b || (a != a && b != b);
}

/* Two decoded events hold the same data (strings compared as the decoder
 * promises them: NUL-terminated, customer_id and attr values by length). */
static inline int fuzz_events_equal(const tl_event *a, const tl_event *b)
{
    if (!fuzz_str_eq(a->event_id, b->event_id) ||
        a->customer_id_len != b->customer_id_len ||
        memcmp(a->customer_id, b->customer_id, a->customer_id_len) != 0 ||
        a->ts != b->ts || a->channel != b->channel ||
        !fuzz_str_eq(a->type, b->type) || !fuzz_str_eq(a->item, b->item) ||
        !fuzz_str_eq(a->store, b->store) ||
        a->has_quantity != b->has_quantity ||
        a->has_amount != b->has_amount ||
        (a->has_quantity && !fuzz_num_eq(a->quantity, b->quantity)) ||
        (a->has_amount && !fuzz_num_eq(a->amount, b->amount)) ||
        a->nattrs != b->nattrs)
        return 0;
    for (size_t i = 0; i < a->nattrs; i++) {
        const tl_attr *x = &a->attrs[i], *y = &b->attrs[i];
        if (x->keylen != y->keylen || x->vallen != y->vallen ||
            memcmp(x->key, y->key, x->keylen) != 0 ||
            memcmp(x->val, y->val, x->vallen) != 0)
            return 0;
    }
    return 1;
}

static inline int fuzz_attr_cmp(const tl_attr *a, const tl_attr *b)
{
    size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
    int c = memcmp(a->key, b->key, n);
    if (c) return c;
    return a->keylen < b->keylen ? -1 : a->keylen > b->keylen;
}

/* Strict UTF-8 (RFC 3629) without NUL, decoded code point by code point
 * (written independently of lib/event.c's check). */
static inline int fuzz_text_ok(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        uint32_t cp, min;
        size_t k;
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A reason tl_event_decode may give (never "late": that is the pipeline's). */
static inline int fuzz_decode_reason_ok(tl_reject r)
{
    return (unsigned)r < TL_REJECT__COUNT && r != TL_REJECT_LATE;
}

/* What event.h promises about an accepted event; also reads every byte of
 * every string (ASan sees an overread) and every name expressions see. */
static inline void fuzz_check_event(const tl_event *ev)
{
    FUZZ_CHECK(ev->event_id != NULL);
    FUZZ_CHECK(ev->customer_id != NULL && ev->customer_id_len > 0);
    FUZZ_CHECK(ev->customer_id[ev->customer_id_len] == '\0');
    FUZZ_CHECK(ev->type != NULL);
    FUZZ_CHECK((unsigned)ev->channel < TL_CH__COUNT);
    fuzz_sink = strlen(ev->event_id) + strlen(ev->type);
    if (ev->item) fuzz_sink = strlen(ev->item);
    if (ev->store) fuzz_sink = strlen(ev->store);
    FUZZ_CHECK(ev->nattrs == 0 || ev->attrs != NULL);
    for (size_t i = 0; i < ev->nattrs; i++) {
        const tl_attr *a = &ev->attrs[i];
        FUZZ_CHECK(a->key != NULL && a->val != NULL);
        FUZZ_CHECK(a->key[a->keylen] == '\0' && a->val[a->vallen] == '\0');
        /* sorted by key, no duplicates, and found by binary search */
        if (i > 0) FUZZ_CHECK(fuzz_attr_cmp(&ev->attrs[i - 1], a) < 0);
        FUZZ_CHECK(tl_event_attr(ev, a->key, a->keylen) == a);
    }
#ifdef TL_EVENT_MAX_TS
    /* The input limits of event.h. */
    FUZZ_CHECK(ev->ts >= TL_EVENT_MIN_TS && ev->ts <= TL_EVENT_MAX_TS);
    FUZZ_CHECK(ev->customer_id_len <= TL_EVENT_MAX_CUSTOMER_ID);
    FUZZ_CHECK(ev->nattrs <= TL_EVENT_MAX_ATTRS);
    FUZZ_CHECK(fuzz_text_ok(ev->event_id, strlen(ev->event_id)));
    FUZZ_CHECK(fuzz_text_ok(ev->customer_id, ev->customer_id_len));
    FUZZ_CHECK(fuzz_text_ok(ev->type, strlen(ev->type)));
    FUZZ_CHECK(!ev->item || fuzz_text_ok(ev->item, strlen(ev->item)));
    FUZZ_CHECK(!ev->store || fuzz_text_ok(ev->store, strlen(ev->store)));
    for (size_t i = 0; i < ev->nattrs; i++) {
        FUZZ_CHECK(fuzz_text_ok(ev->attrs[i].key, ev->attrs[i].keylen));
        FUZZ_CHECK(fuzz_text_ok(ev->attrs[i].val, ev->attrs[i].vallen));
    }
#endif
    /* Every event name through the expression-facing fetch. */
    for (uint32_t var = 0; tl_event_var_name(var); var++) {
        tl_value v;
        const char *key = ev->nattrs ? ev->attrs[0].key : "k";
        size_t keylen = ev->nattrs ? ev->attrs[0].keylen : 1;
        tl_event_fetch((void *)ev, var, key, keylen, &v);
        if (v.type == TL_T_STR && v.u.str.len)
            fuzz_sink = (unsigned char)v.u.str.ptr[v.u.str.len - 1];
    }
}

#endif
