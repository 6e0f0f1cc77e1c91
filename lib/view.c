#include "view.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache.h"

void tl_view_add(tl_view_fields *fs, const char *name, size_t nlen,
                 const char *val, size_t vlen)
{
    fs->f = tl_xrealloc(fs->f, (fs->n + 1) * sizeof *fs->f);
    fs->f[fs->n].name = tl_xstrndup(name, nlen);
    fs->f[fs->n].val = val ? tl_xstrndup(val, vlen) : NULL;
    fs->f[fs->n].type = TL_T_STR;
    fs->n++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const tl_view_field *)a)->name,
                  ((const tl_view_field *)b)->name);
}

void tl_view_sort(tl_view_fields *fs)
{
    if (fs->n) qsort(fs->f, fs->n, sizeof *fs->f, by_name);
}

void tl_view_fields_free(tl_view_fields *fs)
{
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->f[i].name);
        free(fs->f[i].val);
    }
    free(fs->f);
    fs->f = NULL;
    fs->n = 0;
}

static void collect(void *ud, size_t idx, const char *f, size_t flen,
                    const char *v, size_t vlen)
{
    (void)idx;
    tl_view_add(ud, f, flen, v, vlen);
}

int tl_view_load(tl_store *st, const char *prefix, const char *id,
                 size_t idlen, tl_view_fields *raw, char *err, size_t errsz)
{
    tl_arena arena;
    tl_arena_init(&arena, 1024);
    size_t klen;
    const char *key = tl_vec_key(&arena, prefix, id, idlen, &klen);
    int rc = tl_store_load(st, &key, &klen, 1, collect, NULL, raw, err,
                           errsz);
    tl_arena_free(&arena);
    return rc;
}

int tl_view_compute(const tl_config *cfg, const char *id,
                    const tl_view_fields *raw, tl_view_when when, int64_t at,
                    tl_view_fields *out, int64_t *as_of, char *err,
                    size_t errsz)
{
    tl_layout layout = {cfg->features, cfg->nfeatures, cfg->rules,
                        cfg->nrules, cfg->block_size, &cfg->ruleset};
    tl_cache *cache = tl_cache_new(&layout, 1);
    tl_vec *v = tl_cache_put(cache, id, strlen(id));
    int rc = TL_OK;
    for (size_t i = 0; i < raw->n && rc == TL_OK; i++)
        rc = tl_vec_load_field(v, &layout, raw->f[i].name,
                               strlen(raw->f[i].name), raw->f[i].val,
                               strlen(raw->f[i].val), err, errsz);
    int64_t now = when == TL_VIEW_AT_NOW  ? tl_now_wall_ms()
                  : when == TL_VIEW_AT_MS ? at
                                          : v->newest;
    if (rc == TL_OK && when == TL_VIEW_AT_NEWEST && !v->has_newest)
        rc = tl_errf(err, errsz, TL_ERR_DECODE,
                     "the vector has no _ts field (written by an older "
                     "tailord?): give a time to read it at");
    *as_of = now;
    for (size_t i = 0; rc == TL_OK && i < cfg->nfeatures; i++) {
        const tl_feature *f = &cfg->features[i];
        /* What a rule would read: counts of nothing are 0, others null;
         * as tailord writes it (lists as JSON arrays). */
        int n = tl_feature_format(f, v->block, now, NULL, 0);
        if (n < 0) {
            tl_view_add(out, f->name, strlen(f->name), NULL, 0);
            continue;
        }
        char *buf = tl_xmalloc((size_t)n + 1);
        tl_feature_format(f, v->block, now, buf, (size_t)n + 1);
        tl_view_add(out, f->name, strlen(f->name), buf, (size_t)n);
        out->f[out->n - 1].type = f->type;
        free(buf);
    }
    tl_cache_free(cache);
    return rc;
}

/* A field's value as typed JSON.  Lists are JSON text already; a scalar
 * goes through tl_value_format_json, which also makes any string valid
 * UTF-8. */
static json_t *typed(const tl_view_field *f)
{
    if (!f->val) return json_null();
    tl_value v = {.type = f->type};
    if (f->type == TL_T_NUM && tl_parse_double(f->val, strlen(f->val),
                                               &v.u.num)) {
        v.type = TL_T_STR;
    } else if (f->type == TL_T_BOOL) {
        v.u.b = strcmp(f->val, "true") == 0;
    } else if (f->type != TL_T_NUM) {
        v.type = TL_T_STR;
    }
    if (v.type == TL_T_STR) v.u.str.ptr = f->val, v.u.str.len = strlen(f->val);
    char *text = f->val;
    if (f->type != TL_T_LIST_STR && f->type != TL_T_LIST_NUM) {
        size_t n = tl_value_format_json(&v, NULL, 0);
        text = tl_xmalloc(n + 1);
        tl_value_format_json(&v, text, n + 1);
    }
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    if (text != f->val) free(text);
    return j ? j : json_null();
}

char *tl_view_json(const char *id, const tl_view_fields *fs, int has_as_of,
                   int64_t as_of)
{
    json_t *obj = json_object(), *feat = json_object();
    json_object_set_new(obj, "customer_id", json_string(id));
    if (has_as_of) json_object_set_new(obj, "as_of", json_integer(as_of));
    for (size_t i = 0; i < fs->n; i++)
        json_object_set_new(feat, fs->f[i].name, typed(&fs->f[i]));
    json_object_set_new(obj, "features", feat);
    /* Numbers as tailord writes them (at most 15 significant digits), not
     * as the double nearest them prints with 17. */
    char *js = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                   JSON_REAL_PRECISION(15));
    json_decref(obj);
    return js;
}
