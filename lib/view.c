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
        /* What a rule would read: counts of nothing are 0, others null. */
        tl_value val;
        tl_feature_read(f, v->block, now, &val);
        if (val.type == TL_T_NULL) {
            tl_view_add(out, f->name, strlen(f->name), NULL, 0);
            continue;
        }
        size_t n = tl_value_format(&val, NULL, 0);
        char *buf = tl_xmalloc(n + 1);
        tl_value_format(&val, buf, n + 1);
        tl_view_add(out, f->name, strlen(f->name), buf, n);
        free(buf);
    }
    tl_cache_free(cache);
    return rc;
}

char *tl_view_json(const char *id, const tl_view_fields *fs, int has_as_of,
                   int64_t as_of, int omit_null)
{
    json_t *obj = json_object(), *feat = json_object();
    json_object_set_new(obj, "customer_id", json_string(id));
    if (has_as_of) json_object_set_new(obj, "as_of", json_integer(as_of));
    for (size_t i = 0; i < fs->n; i++) {
        if (!fs->f[i].val && omit_null) continue;
        json_object_set_new(feat, fs->f[i].name,
                            fs->f[i].val ? json_string(fs->f[i].val)
                                         : json_null());
    }
    json_object_set_new(obj, "features", feat);
    char *js = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    return js;
}
