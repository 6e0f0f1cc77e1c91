/*
 * config_features — the features section: a list of mappings, each a
 * name, a kind (feature.h) and the keys that kind takes, compiled into
 * L->c->features (with the expressions' text kept for the summary).
 * Messages name the feature as features[i] and point at the offending key.
 */
#include "config_int.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common.h"
#include "event.h"
#include "feature.h"

#define MAX_LENGTH_LIMIT 4096   /* max_length */
#define K_MAX 100               /* top_k: k */
#define CAPACITY_MAX 10000      /* top_k: capacity */
#define N_MAX 100               /* last_n: n */
#define EXACT_UP_TO_MAX 100000  /* distinct: exact_up_to */
#define PRECISION_MIN 4         /* distinct: precision */
#define PRECISION_MAX 16

/* The keys of a feature's mapping; v[] and kn[] below are indexed by K_*. */
static const char *const keys[] = {
    "name", "kind", "where", "field", "window", "resolution",
    "max_length", "half_life", "ttl", "k", "capacity", "n",
    "exact_up_to", "precision", "of"};
enum {
    K_NAME, K_KIND, K_WHERE, K_FIELD, K_WINDOW, K_RES, K_MAXLEN,
    K_HALF_LIFE, K_TTL, K_K, K_CAPACITY, K_N, K_EXACT, K_PRECISION, K_OF,
    K__N
};

/* where and field: expressions on the event; the kind says whether it
 * needs a field and of which type. */
static int feature_exprs(loader *L, yaml_node_t *n, yaml_node_t *const *v,
                         const char *at, size_t idx,
                         const tl_feature_kind_info *ki)
{
    tl_feature *f = &L->c->features[idx];
    feat_text *txt = &L->c->text->features[idx];
    tl_expr_scope ev_scope = {tl_event_resolve, NULL};
    char path[64];
    int rc;
    if (v[K_WHERE]) {
        snprintf(path, sizeof path, "%s.where", at);
        if ((rc = tl_config_yaml_expr(L, v[K_WHERE], path, &ev_scope,
                                      TL_T_BOOL, &f->where, &txt->where)))
            return rc;
    }

    snprintf(path, sizeof path, "%s.field", at);
    if (v[K_FIELD] && !ki->needs_field)
        return fail_node(L, v[K_FIELD], "%s: kind %s takes no field", path,
                         ki->name);
    if (!v[K_FIELD] && ki->needs_field)
        return fail_node(L, n,
                         "%s: missing required key 'field' (kind %s needs the "
                         "event value it uses)",
                         at, ki->name);
    if (v[K_FIELD]) {
        if ((rc = tl_config_yaml_expr(L, v[K_FIELD], path, &ev_scope,
                                      TL_T_NULL, &f->field, &txt->field)))
            return rc;
        tl_type t = tl_expr_type(f->field);
        if (ki->field_type != TL_T_NULL && t != ki->field_type)
            return tl_config_yaml_fail_in(
                L, v[K_FIELD], 0,
                "%s: kind %s needs a %s field, but this is a %s", path,
                ki->name, tl_type_name(ki->field_type), tl_type_name(t));
    }
    return TL_OK;
}

/* window and resolution (sliding-window kinds only), and max_length (a
 * string field only). */
static int feature_window(loader *L, yaml_node_t *n, yaml_node_t *const *v,
                          const char *at, tl_feature *f,
                          const tl_feature_kind_info *ki)
{
    char path[64];
    int rc;
    for (int k = K_WINDOW; k <= K_RES; k++) {
        snprintf(path, sizeof path, "%s.%s", at, keys[k]);
        if (v[k] && !ki->needs_window)
            return fail_node(L, v[k], "%s: kind %s takes no %s", path, ki->name,
                             keys[k]);
        if (v[k] && (rc = tl_config_yaml_duration(
                         L, v[k], path, 1, 0,
                         k == K_WINDOW ? &f->window_ms : &f->resolution_ms)))
            return rc;
    }
    if (ki->needs_window && !v[K_WINDOW])
        return fail_node(L, n,
                         "%s: missing required key 'window' (kind %s counts "
                         "over a sliding window, e.g. window: 30d)",
                         at, ki->name);

    int64_t x;
    if (v[K_MAXLEN]) {
        snprintf(path, sizeof path, "%s.max_length", at);
        if (!f->field || tl_expr_type(f->field) != TL_T_STR)
            return fail_node(L, v[K_MAXLEN],
                             "%s: applies only to a feature that keeps a "
                             "string field (e.g. kind last)",
                             path);
        if ((rc = tl_config_yaml_int(L, v[K_MAXLEN], path, 1,
                                     MAX_LENGTH_LIMIT, &x)))
            return rc;
        f->max_len = (uint32_t)x;
    }
    return TL_OK;
}

/* The integer options: key, bounds, destination. */
static int feature_ints(loader *L, yaml_node_t *const *v, const char *at,
                        tl_feature *f)
{
    const struct {
        int key;
        int64_t min, max;
        uint32_t *out;
    } ints[] = {
        {K_K, 1, K_MAX, &f->k},
        {K_CAPACITY, 0, CAPACITY_MAX, &f->capacity}, /* min: k, below */
        {K_N, 1, N_MAX, &f->n},
        {K_EXACT, 1, EXACT_UP_TO_MAX, &f->exact_up_to},
        {K_PRECISION, PRECISION_MIN, PRECISION_MAX, &f->precision},
    };
    char path[64];
    int64_t x;
    int rc;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        yaml_node_t *val = v[ints[i].key];
        if (!val) continue;
        int64_t min = ints[i].key == K_CAPACITY ? (int64_t)f->k : ints[i].min;
        snprintf(path, sizeof path, "%s.%s", at, keys[ints[i].key]);
        if ((rc = tl_config_yaml_int(L, val, path, min, ints[i].max, &x)))
            return rc;
        *ints[i].out = (uint32_t)x;
    }
    return TL_OK;
}

/*
 * The kind's options (TL_OPT_*): one it does not take is an error at its
 * key, a required one missing an error at the feature.  capacity goes with
 * k, precision with exact_up_to; ttl suits every kind.
 */
static int feature_options(loader *L, yaml_node_t *n, yaml_node_t *const *v,
                           yaml_node_t *const *kn, const char *at, size_t idx,
                           const tl_feature_kind_info *ki)
{
    tl_feature *f = &L->c->features[idx];
    char path[64];
    int rc;
    const int allow[K__N] = {
        [K_HALF_LIFE] = ki->half_life, [K_TTL] = TL_OPT_MAY, [K_K] = ki->k,
        [K_CAPACITY] = ki->k ? TL_OPT_MAY : TL_OPT_NO, [K_N] = ki->n,
        [K_EXACT] = ki->bounds,
        [K_PRECISION] = ki->bounds ? TL_OPT_MAY : TL_OPT_NO, [K_OF] = ki->of};
    for (int k = K_HALF_LIFE; k < K__N; k++)
        if (v[k] && allow[k] == TL_OPT_NO)
            return fail_node(L, kn[k], "%s: kind %s takes no '%s'", at,
                             ki->name, keys[k]);
    for (int k = K_HALF_LIFE; k < K__N; k++)
        if (!v[k] && allow[k] == TL_OPT_MUST)
            return fail_node(L, n, "%s: kind %s needs '%s'", at, ki->name,
                             keys[k]);
    if (v[K_CAPACITY] && !v[K_K])
        return fail_node(L, kn[K_CAPACITY], "%s: 'capacity' needs 'k'", at);

    if (v[K_HALF_LIFE]) {
        snprintf(path, sizeof path, "%s.half_life", at);
        if ((rc = tl_config_yaml_duration(L, v[K_HALF_LIFE], path, 1, 0,
                                          &f->half_life_ms)))
            return rc;
    }
    if (v[K_TTL]) {
        snprintf(path, sizeof path, "%s.ttl", at);
        if ((rc = tl_config_yaml_duration(L, v[K_TTL], path, 0, 0,
                                          &f->ttl_ms)))
            return rc;
    }
    if ((rc = feature_ints(L, v, at, f))) return rc;
    if (v[K_OF]) {
        /* A name for now; tl_config_features_load resolves it once every
         * feature is known (it may name a later one). */
        char *name = NULL;
        snprintf(path, sizeof path, "%s.of", at);
        if ((rc = tl_config_yaml_str(L, v[K_OF], path, 0, &name))) return rc;
        free(name);
        L->fof[idx] = v[K_OF];
    }
    return TL_OK;
}

static int load_feature(loader *L, yaml_node_t *n, size_t idx)
{
    yaml_node_t *v[K__N], *kn[K__N];
    tl_feature *f = &L->c->features[idx];
    char at[32];
    int rc;
    snprintf(at, sizeof at, "features[%zu]", idx);
    if ((rc = tl_config_yaml_want_map(
             L, n, at, "a mapping with name, kind and the kind's keys")) ||
        (rc = tl_config_yaml_map_keys(L, n, at, keys, K__N, v, kn)))
        return rc;
    L->fnode[idx] = n;
    if ((rc = tl_config_yaml_unique_name(L, n, v[K_NAME], at, 1, L->fname,
                                         idx, &f->name)))
        return rc;

    if (!v[K_KIND])
        return fail_node(L, n, "%s: missing required key 'kind' (one of: %s)",
                         at, tl_feature_kind_list());
    if (v[K_KIND]->type != YAML_SCALAR_NODE ||
        tl_feature_kind_parse(scalar(v[K_KIND]), &f->kind) != 0)
        return tl_config_yaml_choice(L, v[K_KIND], at, "kind",
                                     tl_feature_kind_list());
    const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);

    if ((rc = feature_exprs(L, n, v, at, idx, ki)) ||
        (rc = feature_window(L, n, v, at, f, ki)) ||
        (rc = feature_options(L, n, v, kn, at, idx, ki)))
        return rc;
    return TL_OK;
}

/* First/last-seen kinds: what `of` must name. */
static int is_time_feature(const tl_feature *f)
{
    return f->kind == TL_FK_FIRST_SEEN || f->kind == TL_FK_LAST_SEEN;
}

int tl_config_features_load(loader *L, yaml_node_t *n)
{
    tl_config *c = L->c;
    char got[96], msg[TL_ERRSZ];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_node(L, n, "features: expected a list of features, got %s",
                         tl_config_yaml_describe(n, got, sizeof got));
    size_t cnt = seq_len(n);
    c->features = tl_xcalloc(cnt ? cnt : 1, sizeof *c->features);
    c->text->features = tl_xcalloc(cnt ? cnt : 1, sizeof *c->text->features);
    L->fname = tl_xcalloc(cnt ? cnt : 1, sizeof *L->fname);
    L->fnode = tl_xcalloc(cnt ? cnt : 1, sizeof *L->fnode);
    L->fof = tl_xcalloc(cnt ? cnt : 1, sizeof *L->fof);
    for (size_t i = 0; i < cnt; i++) {
        /* Counted first so that tl_config_free clears a half-built one. */
        c->nfeatures = i + 1;
        int rc = load_feature(L, seq_item(L, n, i), i);
        if (rc) return rc;
    }
    /* `of` names any feature of the list, earlier or later. */
    for (size_t i = 0; i < cnt; i++) {
        if (!L->fof[i]) continue;
        const char *name = scalar(L->fof[i]);
        size_t j = 0;
        while (j < cnt && strcmp(c->features[j].name, name)) j++;
        if (j == cnt)
            return fail_node(
                L, L->fof[i], "features[%zu]: unknown feature %s in of", i,
                tl_config_yaml_describe(L->fof[i], got, sizeof got));
        c->features[i].of = (int)j;
    }
    /* Features that read another one (since) last, so that the one they
     * read is finished. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < cnt; i++) {
            tl_feature *f = &c->features[i];
            if ((tl_feature_kind_get(f->kind)->of != TL_OPT_NO) != pass)
                continue;
            if (tl_feature_finish(f, c->features, msg, sizeof msg) == TL_OK)
                continue;
            /* Most likely `of` names a feature of the wrong kind: point at
             * it then. */
            yaml_node_t *where = L->fnode[i];
            if (L->fof[i] && !is_time_feature(&c->features[f->of]))
                where = L->fof[i];
            return fail_node(L, where, "features[%zu] (%s): %s", i, f->name,
                             msg);
        }
    return TL_OK;
}
