/*
 * event_schema — the event's fields as the Avro schemas spell them: which
 * Avro types tailor reads each field from, and the checks a reader or an
 * encoder schema must pass.
 */
#include <string.h>

#include "event_int.h"

const tl_event_field tl_event_schema_fields[F__COUNT] = {
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

int tl_event_schema_find(const char *name)
{
    for (int f = 0; f < F__COUNT; f++)
        if (strcmp(tl_event_schema_fields[f].name, name) == 0) return f;
    return -1;
}

static int is_num_type(avro_schema_t s)
{
    return is_avro_double(s) || is_avro_float(s) || is_avro_int64(s) ||
           is_avro_int32(s);
}

avro_schema_t tl_event_schema_nullable(avro_schema_t s, int *null_br,
                                       int *val_br)
{
    if (!is_avro_union(s) || avro_schema_union_size(s) != 2) return NULL;
    avro_schema_t b0 = tl_avro_unlink(avro_schema_union_branch(s, 0));
    avro_schema_t b1 = tl_avro_unlink(avro_schema_union_branch(s, 1));
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
    s = tl_avro_unlink(s);
    switch (sh) {
    case SH_STR: return is_avro_string(s);
    case SH_OPT_STR:
        base = tl_event_schema_nullable(s, &nb, &vb);
        return is_avro_string(s) || (base && is_avro_string(base));
    case SH_LONG: return is_avro_int64(s) || is_avro_int32(s);
    case SH_ENUM: return is_avro_enum(s);
    case SH_OPT_NUM:
        base = tl_event_schema_nullable(s, &nb, &vb);
        return is_num_type(s) || (base && is_num_type(base));
    case SH_MAP:
        return is_avro_map(s) &&
               is_avro_string(tl_avro_unlink(avro_schema_map_values(s)));
    }
    return 0;
}

int tl_event_schema_check_shape(avro_schema_t fs, enum field f,
                                const char *what, char *err, size_t errsz)
{
    const tl_event_field *fd = &tl_event_schema_fields[f];
    if (shape_ok(fs, fd->shape)) return TL_OK;
    return tl_errf(err, errsz, TL_ERR_CONFIG,
                   "%s schema: field '%s' must be %s", what, fd->name,
                   shape_names[fd->shape]);
}

int tl_event_schema_check_reader(avro_schema_t rec, char *err, size_t errsz)
{
    for (int f = 0; f < F__COUNT; f++) {
        const tl_event_field *fd = &tl_event_schema_fields[f];
        int i = tl_event_schema_index(rec, fd->name);
        if (i < 0 && fd->required)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "reader schema: field '%s' is missing", fd->name);
        if (i >= 0 &&
            tl_event_schema_check_shape(tl_event_schema_field(rec, i),
                                        (enum field)f, "reader", err, errsz))
            return TL_ERR_CONFIG;
    }
    return TL_OK;
}

int tl_event_schema_index(avro_schema_t rec, const char *name)
{
    return avro_schema_record_field_get_index(rec, name);
}

avro_schema_t tl_event_schema_field(avro_schema_t rec, int idx)
{
    return tl_avro_unlink(avro_schema_record_field_get_by_index(rec, idx));
}

int tl_event_schema_parse(const char *json, const char *what,
                          avro_schema_t *out, char *err, size_t errsz)
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
