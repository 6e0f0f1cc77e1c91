/*
 * view — a customer's vector as people and campaign tools read it, shared
 * by `tailorctl show` and the HTTP endpoint GET /v1/customers/{id}: the raw
 * hash from Redis, and with a config every feature decoded from its exact
 * internal state and read as of a moment (by default the customer's newest
 * event), so that ttl, windows and decay mean what they mean in rules.
 *
 * Ownership: tl_view_fields owns its strings (tl_view_fields_free); the
 * store and config are borrowed.
 */
#ifndef TL_VIEW_H
#define TL_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

typedef struct tl_view_field {
    char *name, *val; /* val NULL: the feature has no value (expired, or
                       * never set); else its readable text, as in Redis */
    tl_type type;     /* the value's type: TL_T_STR for a raw field (its
                       * type is not known without a config) */
} tl_view_field;

typedef struct tl_view_fields {
    tl_view_field *f;
    size_t n;
} tl_view_fields;

void tl_view_add(tl_view_fields *fs, const char *name, size_t nlen,
                 const char *val, size_t vlen);
void tl_view_sort(tl_view_fields *fs);
void tl_view_fields_free(tl_view_fields *fs);

/* HGETALL of the customer's key <prefix>cx:{id} into raw (empty: no such
 * customer).  TL_OK or the store's error. */
int tl_view_load(tl_store *st, const char *prefix, const char *id,
                 size_t idlen, tl_view_fields *raw, char *err, size_t errsz);

/* When a view is read: the customer's newest event (the default), a given
 * epoch ms, or the wall clock. */
typedef enum { TL_VIEW_AT_NEWEST, TL_VIEW_AT_MS, TL_VIEW_AT_NOW } tl_view_when;

/*
 * Every configured feature of the vector in raw, in config order, read at
 * `when` (*as_of gets the moment used), as a rule reads it and as tailord
 * writes its readable field (tl_feature_format: a count of nothing is 0,
 * lists are JSON arrays): val NULL for a feature without a value.  TL_ERR_DECODE with a message for malformed internal state, or
 * when TL_VIEW_AT_NEWEST is asked of a vector without _ts.
 */
int tl_view_compute(const tl_config *cfg, const char *id,
                    const tl_view_fields *raw, tl_view_when when, int64_t at,
                    tl_view_fields *out, int64_t *as_of, char *err,
                    size_t errsz);

/* {"customer_id":ID,["as_of":MS,]"features":{name:value|null,...}} (malloc'd;
 * caller frees); as_of is left out when has_as_of is 0.  Values are typed
 * JSON: numbers, true/false, strings, arrays, null for a feature without
 * value; raw fields (TL_T_STR) are strings. */
char *tl_view_json(const char *id, const tl_view_fields *fs, int has_as_of,
                   int64_t as_of);

#endif
