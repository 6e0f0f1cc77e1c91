/*
 * event_int — what the files of the event module share; not for other
 * modules (their interface is event.h).
 *
 *   event.c           the event, reject reasons, attrs, the checks every
 *                     decoder ends with, the decoder's front and lifetime,
 *                     the event's names for expressions
 *   event_schema.c    the event's fields as Avro schemas spell them
 *   event_avro.c      the Avro decoder: set-up, the bytes' checks, and direct
 *                     decoding of the reader's own schema
 *   event_avroc.c     decoding through Avro-C's resolver (a writer schema)
 *   event_from_json.c JSON events: the front, and jansson's reader
 *   event_json_direct.c JSON events in one pass, without allocating
 *   event_encode.c    the Avro encoder
 *   avro_check.c      the bounds walk of Avro data (tl_avro_check)
 *   avro_write.c      an Avro value into a growing buffer (tl_avro_write)
 *
 * Ownership: the decoder owns everything it points to (schemas, Avro-C
 * values, the channel map, the plan, the defaults); tl_event_decoder_free
 * releases it.
 */
#ifndef TL_EVENT_INT_H
#define TL_EVENT_INT_H

#include <avro.h>
#include <jansson.h>

#include "event.h"

/* ------------------------------------------------------------------------
 * The event's fields as the Avro schemas spell them (event_schema.c)
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

typedef struct tl_event_field {
    const char *name;
    enum shape shape;
    int required; /* must be in a reader schema */
} tl_event_field;

extern const tl_event_field tl_event_schema_fields[F__COUNT];

/* The field called name, or -1 when it is not an event field. */
int tl_event_schema_find(const char *name);
/* Index of the field called name in the record rec, -1 when absent. */
int tl_event_schema_index(avro_schema_t rec, const char *name);
/* The schema of field idx of rec, links followed. */
avro_schema_t tl_event_schema_field(avro_schema_t rec, int idx);
/* For a union of exactly null and one other type: that type and the branch
 * indexes; else NULL. */
avro_schema_t tl_event_schema_nullable(avro_schema_t s, int *null_br,
                                       int *val_br);
/* TL_OK when fs (field f's schema) has f's shape, else TL_ERR_CONFIG with
 * "<what> schema: field 'x' must be ...". */
int tl_event_schema_check_shape(avro_schema_t fs, enum field f,
                                const char *what, char *err, size_t errsz);
/* Every required field present, every field present of its shape. */
int tl_event_schema_check_reader(avro_schema_t rec, char *err, size_t errsz);
/* Parses a record schema ("<what> schema: ..." errors, TL_ERR_CONFIG). */
int tl_event_schema_parse(const char *json, const char *what,
                          avro_schema_t *out, char *err, size_t errsz);

/* A named type's reference resolved to the type itself. */
static inline avro_schema_t tl_avro_unlink(avro_schema_t s)
{
    while (s && is_avro_link(s)) s = avro_schema_link_target(s);
    return s;
}

/* ------------------------------------------------------------------------
 * The bounds walk (avro_check.c)
 */

/* tl_avro_check for an input event: also every string and map key valid
 * UTF-8 without NUL, and at most max_map entries in one map (counted on the
 * block headers). */
int tl_avro_check_input(avro_schema_t schema, const void *buf, size_t len,
                        size_t max_map, size_t *used, char *err,
                        size_t errsz);
/* Moves *p past one datum of sch (bounds checked, text not); -1 when it
 * does not fit before end. */
int tl_avro_check_skip(avro_schema_t sch, const unsigned char **p,
                       const unsigned char *end, char *err, size_t errsz);

/* ------------------------------------------------------------------------
 * The decoder
 */

struct dstep; /* event_avro.c */

struct tl_event_decoder {
    tl_event_format fmt;
    int64_t min_ts, max_ts;     /* accepted event times (set_range) */
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

/* event.c */
int tl_event_attr_cmp(const char *a, size_t alen, const char *b,
                      size_t blen);
/* Insertion sort by key: for a few attrs, allocates nothing. */
void tl_event_attrs_isort(tl_attr *a, size_t n);
/* Stable sort by key, scratch from the arena. */
void tl_event_attrs_sort(tl_attr *a, size_t n, tl_arena *arena);
/* The reader's default attrs (the writer lacks the field), into the arena. */
void tl_event_default_attrs(const tl_event_decoder *d, tl_arena *arena,
                            tl_event *ev);
/* The checks every format ends with (limits, finite numbers, customer,
 * time in [min_ts, max_ts]). */
tl_reject tl_event_check(const tl_event *ev, const char *no_customer,
                         int64_t min_ts, int64_t max_ts, char *err,
                         size_t errsz);

/* event_from_json.c: tl_event_from_json with the time range (the direct
 * reader, else jansson's); tl_event_json_tree: jansson's reader alone (the
 * reference the tests hold the direct one to). */
tl_reject tl_event_json(const char *json, size_t len, tl_arena *arena,
                        tl_event *ev, int64_t min_ts, int64_t max_ts,
                        char *err, size_t errsz);
tl_reject tl_event_json_tree(const char *json, size_t len, tl_arena *arena,
                             tl_event *ev, int64_t min_ts, int64_t max_ts,
                             char *err, size_t errsz);
/* event_json_direct.c: 0 when json is a flat event object read into *ev
 * (zeroed by the caller; strings in the arena, nothing else allocated),
 * still to be checked with tl_event_check; -1 when jansson must read it. */
int tl_event_json_direct(const char *json, size_t len, tl_arena *arena,
                         tl_event *ev);

/* event_avro.c: the Avro part of tl_event_decoder_new/_free and
 * tl_event_decode. */
int tl_event_avro_init(tl_event_decoder *d, const char *reader_json,
                       const char *writer_json, char *err, size_t errsz);
void tl_event_avro_fini(tl_event_decoder *d);
tl_reject tl_event_avro_decode(tl_event_decoder *d, const void *buf,
                               size_t len, tl_arena *arena, tl_event *ev,
                               char *err, size_t errsz);

/* event_avroc.c */
/* With a writer schema: d->reader becomes the reader (rjson) minus the
 * fields the writer lacks, whose defaults are kept in d->def_*; d->reader
 * stays NULL when the writer has them all. */
int tl_event_avroc_reader(tl_event_decoder *d, json_t *rjson, char *err,
                          size_t errsz);
/* The resolver (when resolve) and the reused generic value. */
int tl_event_avroc_values(tl_event_decoder *d, int resolve, char *err,
                          size_t errsz);
/* Reads bytes already checked by tl_avro_check_input into *ev. */
tl_reject tl_event_avroc_decode(tl_event_decoder *d, const void *buf,
                                size_t len, tl_arena *arena, tl_event *ev,
                                char *err, size_t errsz);

#endif
