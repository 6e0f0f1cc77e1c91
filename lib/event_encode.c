/*
 * event_encode — the Avro encoder for events (producers: `tailorctl
 * produce`, the tests, the benchmark).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "event_int.h"
#include "schemas.h"

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

static const char *fname(enum field f)
{
    return tl_event_schema_fields[f].name;
}

/* Every field of the schema an event field of its shape; where each is and
 * which union branches are null and value. */
static int check_schema(tl_event_encoder *enc, char *err, size_t errsz)
{
    for (size_t i = 0; i < avro_schema_record_size(enc->schema); i++) {
        const char *name =
            avro_schema_record_field_name(enc->schema, (int)i);
        if (tl_event_schema_find(name) < 0)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "event schema: field '%s' is not an event field",
                           name);
    }
    for (int f = 0; f < F__COUNT; f++) {
        int i = tl_event_schema_index(enc->schema, fname((enum field)f));
        enc->idx[f] = i;
        enc->null_br[f] = enc->val_br[f] = -1;
        if (i < 0) continue;
        avro_schema_t fs = tl_event_schema_field(enc->schema, i);
        if (tl_event_schema_check_shape(fs, (enum field)f, "event", err,
                                        errsz))
            return TL_ERR_CONFIG;
        tl_event_schema_nullable(fs, &enc->null_br[f], &enc->val_br[f]);
    }
    return TL_OK;
}

tl_event_encoder *tl_event_encoder_new(const char *schema_json, char *err,
                                       size_t errsz)
{
    tl_event_encoder *enc = tl_xcalloc(1, sizeof *enc);
    if (!schema_json) schema_json = tl_schema_interaction_event;
    if (tl_event_schema_parse(schema_json, "event", &enc->schema, err,
                              errsz) ||
        check_schema(enc, err, errsz))
        goto fail;
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
                           "schema does not allow null", fname(f));
        *out = v;
        return TL_OK;
    }
    if (avro_value_set_branch(&v, is_null ? enc->null_br[f] : enc->val_br[f],
                              out))
        goto avro_fail;
    if (is_null && avro_value_set_null(out)) goto avro_fail;
    return TL_OK;
avro_fail:
    return tl_errf(err, errsz, TL_ERR, "field '%s': %s", fname(f),
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
        return tl_errf(err, errsz, TL_ERR, "field '%s': %s", fname(f),
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
                           fname(f), x, is32 ? "int" : "long");
        rc = is32 ? avro_value_set_int(&v, (int32_t)x)
                  : avro_value_set_long(&v, (int64_t)x);
        break;
    }
    default: rc = EINVAL;
    }
    if (rc)
        return tl_errf(err, errsz, TL_ERR, "field '%s': %s", fname(f),
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
        avro_schema_t es = tl_event_schema_field(enc->schema,
                                                 enc->idx[F_CHANNEL]);
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
