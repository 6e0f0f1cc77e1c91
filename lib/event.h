/*
 * event — the interaction event, its decoders (Avro binary with writer→reader
 * schema resolution, JSON lines) and its Avro encoder, and the event's names
 * for the expression language.  Files: event.c (the event, the decoder's
 * front, expression names), event_schema.c, event_avro.c (direct decoding),
 * event_avroc.c (Avro-C's resolver), event_from_json.c (jansson's reader),
 * event_json_direct.c (the one-pass JSON reader), event_encode.c,
 * avro_check.c, avro_write.c; what they share is in event_int.h.
 *
 * Ownership: a decoded tl_event's strings live in the tl_arena passed to the
 * decoder; they stay valid until that arena is reset.  The decoder itself
 * (tl_event_decoder) is reused for every message.  Events written with the
 * reader's own schema (no writer schema configured) are decoded straight
 * from the bytes and allocate nothing beyond the arena; with a writer
 * schema, Avro-C's resolver reads them into the decoder's reused Avro values
 * (avro_value_read mallocs and frees a buffer per string and map key).
 * JSON events whose values are strings, numbers, booleans or null are read
 * in one pass and allocate nothing beyond the arena either
 * (event_json_direct.c); others are read by jansson, which mallocs a tree.
 */
#ifndef TL_EVENT_H
#define TL_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "expr.h"

typedef enum tl_channel {
    TL_CH_WEB = 0,
    TL_CH_APP,
    TL_CH_STORE,
    TL_CH_CALL_CENTER,
    TL_CH_EMAIL,
    TL_CH_CHAT,
    TL_CH_OTHER,
    TL_CH__COUNT
} tl_channel;

/* "web", "app", ... (the Avro enum symbols). */
const char *tl_channel_name(tl_channel c);
/* Returns 0 and sets *out for a known symbol of len bytes, else -1. */
int tl_channel_parse(const char *s, size_t len, tl_channel *out);

typedef struct tl_attr {
    const char *key, *val; /* NUL-terminated */
    size_t keylen, vallen;
} tl_attr;

typedef struct tl_event {
    const char *event_id;    /* NUL-terminated, may be "" */
    const char *customer_id; /* NUL-terminated, never "" once decoded */
    size_t customer_id_len;
    int64_t ts;              /* epoch milliseconds */
    tl_channel channel;
    const char *type;        /* NUL-terminated */
    const char *item;        /* NULL when absent */
    const char *store;       /* NULL when absent */
    double quantity, amount;
    int has_quantity, has_amount;
    const tl_attr *attrs;    /* nattrs entries, sorted by key (byte order) */
    size_t nattrs;
} tl_event;

/* Event formats on the input topic. */
typedef enum tl_event_format { TL_FMT_AVRO = 0, TL_FMT_JSON } tl_event_format;

/* Why an input message was rejected (the dead-letter reason). */
typedef enum tl_reject {
    TL_REJECT_NONE = 0,
    TL_REJECT_DECODE,           /* bytes are not a valid event */
    TL_REJECT_MISSING_CUSTOMER, /* customer_id is empty */
    TL_REJECT_LATE,             /* older than events.max_lateness allows */
    TL_REJECT_BAD_TIMESTAMP,    /* ts outside the accepted range (below) */
    TL_REJECT_STORE,            /* the customer's stored vector cannot be
                                 * read: its key is not a hash (WRONGTYPE),
                                 * or its watermark is garbled */
    TL_REJECT__COUNT
} tl_reject;
/* "decode", "missing_customer", "late", "bad_timestamp", "store" — the
 * dead-letter reason header. */
const char *tl_reject_name(tl_reject r);

/*
 * What an input message may be.  Beyond these limits a message is hostile or
 * broken, never a real interaction, and is rejected before it can cost much:
 * the size before anything is parsed, the attrs count (Avro) before Avro-C
 * reads a single entry.
 *   - at most TL_EVENT_MAX_SIZE bytes (1 MiB, Kafka's default message size);
 *   - every string valid UTF-8 without NUL bytes (TL_REJECT_DECODE, "field
 *     'item' is not valid UTF-8");
 *   - customer_id at most TL_EVENT_MAX_CUSTOMER_ID bytes;
 *   - at most TL_EVENT_MAX_ATTRS attrs;
 *   - ts in the decoder's range, at most [TL_EVENT_MIN_TS, TL_EVENT_MAX_TS]
 *     (1970-01-01 .. 2200-01-01, UTC), else TL_REJECT_BAD_TIMESTAMP: one
 *     event from the year 3000 would otherwise make every later event of its
 *     customer "late", and one in seconds (1741700002, taken as January
 *     1970) would count as a very old event.  The daemon narrows the range
 *     per batch to [events.min_time, the clock + events.max_future]
 *     (tl_event_decoder_set_range); tl_event_from_json keeps the widest.
 *     A ts that would be in the range read as seconds (or as microseconds,
 *     or nanoseconds) is said to look like one ("ts looks like seconds
 *     since 1970 (2025-03-11T13:33:22Z); tailor expects milliseconds").
 */
#define TL_EVENT_MAX_SIZE ((size_t)1 << 20)
#define TL_EVENT_MAX_CUSTOMER_ID 256
#define TL_EVENT_MAX_ATTRS 10000
#define TL_EVENT_MIN_TS INT64_C(0)
#define TL_EVENT_MAX_TS INT64_C(7258118400000) /* 2200-01-01T00:00:00Z */

typedef struct tl_event_decoder tl_event_decoder;

/*
 * Creates a decoder.  For TL_FMT_AVRO, `reader_schema_json` is the schema the
 * daemon reads with (schemas/interaction_event.avsc; NULL: the built-in copy)
 * and `writer_schema_json` the schema producers write with, or NULL when it is
 * the same; the writer's data is resolved to the reader's schema by Avro-C
 * (so producers may add fields, and fields the reader has with defaults may
 * be missing).  Without a writer schema the bytes are decoded directly (the
 * same events, errors and limits as Avro-C's path, without its allocations).
 * For TL_FMT_JSON both may be NULL.
 * Returns NULL and fills err when a schema does not parse or the two do not
 * resolve.  Free with tl_event_decoder_free.
 */
tl_event_decoder *tl_event_decoder_new(tl_event_format fmt,
                                       const char *reader_schema_json,
                                       const char *writer_schema_json,
                                       char *err, size_t errsz);
void tl_event_decoder_free(tl_event_decoder *d);

/*
 * Sets the event times the decoder accepts, epoch milliseconds, both ends
 * included, clamped to [TL_EVENT_MIN_TS, TL_EVENT_MAX_TS] (the range of a
 * new decoder).  The pipeline sets it once per batch from the clock, so
 * that decoding stays pure and reads no clock per event.
 */
void tl_event_decoder_set_range(tl_event_decoder *d, int64_t min_ts,
                                int64_t max_ts);

/*
 * Decodes one message of `len` bytes into *ev, copying strings into `arena`.
 * Returns TL_REJECT_NONE, or the reason with a one-line detail in err
 * (e.g. "truncated Avro data", "3 trailing bytes after the event",
 * "field 'ts' must be an integer", "field 'item' is not valid UTF-8",
 * "ts 32503680000000 is after 2200-01-01T00:00:00Z").  The limits above and
 * the decoder's range are enforced for both formats.
 */
tl_reject tl_event_decode(tl_event_decoder *d, const void *buf, size_t len,
                          tl_arena *arena, tl_event *ev, char *err,
                          size_t errsz);

/*
 * JSON (one object, the line format of the datasets) to event, without a
 * decoder: used by the JSON decoder and by `tailorctl produce`.  ts is epoch
 * milliseconds (an integer) or an ISO 8601 time (a string, see
 * tl_parse_time: "2025-03-11T14:33:22Z", "2025-03-11T15:33:22.250+01:00").
 * attrs values that are not strings become their compact JSON text (numbers
 * in shortest round-trip form, e.g. 0.29, 6, true).  null attrs values are
 * dropped.  A top-level field the event does not have is an attribute too
 * (the same way; an attrs entry of the same name wins).  The time range is the widest, [TL_EVENT_MIN_TS, TL_EVENT_MAX_TS].
 */
tl_reject tl_event_from_json(const char *json, size_t len, tl_arena *arena,
                             tl_event *ev, char *err, size_t errsz);

/* Avro encoder for interaction events (for producers and tests); schema_json
 * NULL: the built-in schemas/interaction_event.avsc. */
typedef struct tl_event_encoder tl_event_encoder;
tl_event_encoder *tl_event_encoder_new(const char *schema_json, char *err,
                                       size_t errsz);
/* Encodes ev into *out (a buffer owned by the encoder, valid until the next
 * call); returns TL_OK or an error. */
int tl_event_encode(tl_event_encoder *enc, const tl_event *ev,
                    const void **out, size_t *outlen, char *err, size_t errsz);
void tl_event_encoder_free(tl_event_encoder *enc);


/*
 * Event fields for expressions: event_id, customer_id, ts (number, epoch ms),
 * channel, type, item, store (strings), quantity, amount (numbers),
 * attrs["key"] (string).  tl_event_resolve is a tl_expr_scope resolver
 * (ud unused); ids it returns are below TL_EVENT_VAR_LIMIT so that callers can
 * combine it with their own names.  tl_event_fetch is the matching fetch with
 * ud = const tl_event *.
 */
#define TL_EVENT_VAR_LIMIT 64u
int tl_event_resolve(void *ud, const char *name, const char *key,
                     uint32_t *var, tl_type *type);
void tl_event_fetch(void *ud, uint32_t var, const char *key, size_t keylen,
                    tl_value *out);

/* The name of an event variable id from tl_event_resolve ("type", "attrs",
 * ...), NULL for an id that is not one. */
const char *tl_event_var_name(uint32_t var);

/* Looks up an attribute (binary search); NULL when absent. */
const tl_attr *tl_event_attr(const tl_event *ev, const char *key,
                             size_t keylen);

/*
 * Checks that buf starts with one complete Avro binary datum of `schema` (an
 * avro_schema_t) whose lengths, counts and indexes all fit the bytes present,
 * and sets *used to its size.  Avro-C trusts lengths (a corrupt one makes it
 * attempt a huge allocation; a short read leaks its string buffer), so data
 * is checked with this before avro_value_read.  Allocates nothing.
 * TL_OK, or TL_ERR_DECODE with e.g. "truncated Avro data".  (avro_check.c)
 */
struct avro_obj_t;
int tl_avro_check(struct avro_obj_t *schema, const void *buf, size_t len,
                  size_t *used, char *err, size_t errsz);

/*
 * Writes an Avro value (an avro_value_t) through the memory writer `w` into
 * *buf (capacity *cap, malloc'd, owned by the caller), doubling the buffer
 * while it is too small, up to `max` bytes.  Shared by the event encoder and
 * the trigger codec.  0 and *outlen, or -1 (avro_strerror() says why).
 * (avro_write.c)
 */
struct avro_value;
struct avro_writer_t_;
int tl_avro_write(struct avro_value *value, struct avro_writer_t_ *w,
                  void **buf, size_t *cap, size_t max, size_t *outlen);

#endif
