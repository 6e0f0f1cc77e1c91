/*
 * config_reload — what a reload may change (tl_config_reloadable, config.h):
 * not the connections, which a reload does not reopen; not, without force,
 * a feature's existence or kind, which would leave its stored state
 * misread or behind, nor an option that shapes its state (window,
 * resolution, half_life, capacity, n, exact_up_to, precision, max_length of
 * the kinds that keep strings), which would reset it or leave it not what
 * the new option computes.  Changes the stored state converts exactly are
 * allowed: a window shortened at the same resolution, a shorter last_n
 * (feature_state.c drops the older buckets or values), a top_k's k at the
 * same capacity.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "config_int.h"
#include "feature.h"
#include "log.h"

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* The first connection setting that differs, or NULL. */
static const char *restart_needed(const tl_config *cur, const tl_config *next)
{
    const char *what = NULL;
    if (str_differs(cur->brokers, next->brokers)) what = "kafka.brokers";
    else if (str_differs(cur->group, next->group)) what = "kafka.group";
    else if (cur->ninputs != next->ninputs) what = "kafka.input";
    else if (cur->nproperties != next->nproperties) what = "kafka.properties";
    else if (str_differs(cur->redis_url, next->redis_url)) what = "redis.url";
    else if (str_differs(cur->redis_prefix, next->redis_prefix))
        what = "redis.prefix";
    else if (cur->redis_allow_eviction != next->redis_allow_eviction)
        what = "redis.allow_eviction";
    else if (cur->redis_timeout_ms != next->redis_timeout_ms)
        what = "redis.timeout";
    /* The endpoint follows a new token, but its socket stays bound. */
    else if (str_differs(cur->http_listen, next->http_listen))
        what = "http.listen";
    for (size_t i = 0; !what && i < cur->ninputs; i++)
        if (strcmp(cur->inputs[i], next->inputs[i])) what = "kafka.input";
    for (size_t i = 0; !what && i < cur->nproperties; i++)
        if (strcmp(cur->properties[i].key, next->properties[i].key) ||
            strcmp(cur->properties[i].val, next->properties[i].val))
            what = "kafka.properties";
    return what;
}

/* The feature of c named name, or NULL. */
static const tl_feature *find_feature(const tl_config *c, const char *name)
{
    for (size_t j = 0; j < c->nfeatures; j++)
        if (!strcmp(c->features[j].name, name)) return &c->features[j];
    return NULL;
}

/* Appends "what a -> b" of one option, "" when a == b. */
static void opt_change(char *out, size_t size, const char *what, int64_t a,
                       int64_t b, int duration)
{
    char x[32], y[32];
    size_t l = strlen(out);
    const char *sep = l && out[l - 1] != '(' ? " " : "";
    if (a == b) return;
    if (duration)
        snprintf(out + l, size - l, "%s%s %s -> %s", sep, what,
                 tl_config_duration_fmt(a, x, sizeof x),
                 tl_config_duration_fmt(b, y, sizeof y));
    else
        snprintf(out + l, size - l, "%s%s %lld -> %lld", sep, what,
                 (long long)a, (long long)b);
}

/* "what a -> b (by c -> d)" when what changed and moved `by` with it (a
 * default derived from it), else "by c -> d". */
static void opt_cause(char *out, size_t size, const char *what, int64_t a,
                      int64_t b, const char *by, int64_t c, int64_t d,
                      int duration)
{
    opt_change(out, size, what, a, b, duration);
    size_t l = strlen(out);
    snprintf(out + l, size - l, l ? " (" : "");
    opt_change(out, size, by, c, d, duration);
    if (l) snprintf(out + strlen(out), size - strlen(out), ")");
}

/* One reshaping of feature f into g, as "<options> <what it costs>" into
 * out: "" when nothing that shapes the state changed or the stored state
 * converts exactly.  Checked in order, the first that applies. */
static void reshaped(const tl_feature *f, const tl_feature *g, char *out,
                     size_t size)
{
    char opts[128] = "";
    const char *cost = NULL, *n = f->name;
    int grows = 0;
    if (f->resolution_ms != g->resolution_ms) {
        opt_cause(opts, sizeof opts, "window", f->window_ms, g->window_ms,
                  "resolution", f->resolution_ms, g->resolution_ms, 1);
        cost = "resets every customer's %s";
    } else if (f->window_ms < g->window_ms) {
        opt_change(opts, sizeof opts, "window", f->window_ms, g->window_ms, 1);
        cost = "leaves every customer's %s without the events older than "
               "the old window (they were not kept) until the new one has "
               "passed";
    } else if (f->half_life_ms != g->half_life_ms) {
        opt_change(opts, sizeof opts, "half_life", f->half_life_ms,
                   g->half_life_ms, 1);
        cost = "leaves every customer's %s decayed with the old half_life "
               "so far (it is not recomputed)";
    } else if (f->capacity != g->capacity) {
        opt_cause(opts, sizeof opts, "k", f->k, g->k, "capacity",
                  f->capacity, g->capacity, 0);
        grows = g->capacity > f->capacity;
        cost = grows ? "leaves every customer's %s counted with the old "
                       "capacity so far (it is not recomputed)"
                     : "resets every customer's %s that tracks more values "
                       "than the new capacity";
    } else if (f->n < g->n) {
        opt_change(opts, sizeof opts, "n", f->n, g->n, 0);
        cost = "leaves every customer's %s with the old n values until more "
               "arrive (older ones were not kept)";
    } else if (f->precision != g->precision) {
        opt_change(opts, sizeof opts, "precision", f->precision,
                   g->precision, 0);
        cost = "resets every customer's %s that has become a sketch (more "
               "values than exact_up_to)";
    } else if (f->exact_up_to != g->exact_up_to) {
        opt_change(opts, sizeof opts, "exact_up_to", f->exact_up_to,
                   g->exact_up_to, 0);
        grows = g->exact_up_to > f->exact_up_to;
        cost = grows ? "leaves every customer's %s that has become a sketch "
                       "an estimate (its values were not kept)"
                     : "resets every customer's %s with more values than "
                       "the new exact_up_to";
    } else if ((f->kind == TL_FK_TOP_K || f->type == TL_T_LIST_STR) &&
               f->max_len != g->max_len) {
        opt_change(opts, sizeof opts, "max_length", f->max_len, g->max_len, 0);
        grows = g->max_len > f->max_len;
        cost = grows ? "leaves every customer's %s with its values cut at "
                       "the old max_length"
                     : "resets every customer's %s holding a value longer "
                       "than the new max_length";
    }
    out[0] = '\0';
    if (!cost) return;
    size_t l = (size_t)snprintf(out, size, "%s ", opts);
    if (l < size) snprintf(out + l, size - l, cost, n);
}

/* Appends "sep item" to list (of size), where sep is ", " or "; " after
 * the first item; counts the items in *n. */
static void list_add(char *list, size_t size, size_t *n, const char *sep,
                     const char *item)
{
    size_t l = strlen(list);
    snprintf(list + l, size - l, "%s%s", (*n)++ ? sep : "", item);
}

/* The features of cur that next removes or gives another kind, in kinds
 * ("a (count -> sum), b (removed)"), and those it keeps with their kind
 * but reshapes, in shapes ("feature a: <reshaping>; feature b: ...");
 * *nk and *ns count them. */
static void changed_features(const tl_config *cur, const tl_config *next,
                             char *kinds, size_t *nk, char *shapes,
                             size_t *ns, size_t size)
{
    char item[640];
    kinds[0] = shapes[0] = '\0';
    *nk = *ns = 0;
    for (size_t i = 0; i < cur->nfeatures; i++) {
        const tl_feature *f = &cur->features[i];
        const tl_feature *g = find_feature(next, f->name);
        if (g && g->kind == f->kind) {
            char what[512];
            reshaped(f, g, what, sizeof what);
            if (!what[0]) continue;
            snprintf(item, sizeof item, "feature %s: %s", f->name, what);
            list_add(shapes, size, ns, "; ", item);
            continue;
        }
        const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
        const tl_feature_kind_info *gi =
            g ? tl_feature_kind_get(g->kind) : NULL;
        if (g)
            snprintf(item, sizeof item, "%s (%s -> %s)", f->name,
                     ki ? ki->name : "?", gi ? gi->name : "?");
        else
            snprintf(item, sizeof item, "%s (removed)", f->name);
        list_add(kinds, size, nk, ", ", item);
    }
}

int tl_config_reloadable(const tl_config *cur, const tl_config *next,
                         int force, char *err, size_t errsz)
{
    const char *what = restart_needed(cur, next);
    if (what)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: %s changed, which needs a restart (connections "
                       "are not reopened by a reload); the running "
                       "configuration stays",
                       next->path ? next->path : "", what);
    char list[2048], shaped[2048];
    size_t n, ns;
    changed_features(cur, next, list, &n, shaped, &ns, sizeof list);
    if (n && !force)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: refused: feature%s %s; stored state would be "
                       "misread or left behind (rename the feature instead, "
                       "or reload with force: tailord --force)",
                       next->path ? next->path : "", n > 1 ? "s" : "", list);
    if (ns && !force)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: refused: %s; reload with force to accept "
                       "(tailord --force), or give the new options a new "
                       "feature name",
                       next->path ? next->path : "", shaped);
    if (n)
        tl_warn("config", "reload with force: feature%s %s (their stored "
                "state is read by the new kind where it parses, reset where "
                "it does not)", n > 1 ? "s" : "", list);
    if (ns) tl_warn("config", "reload with force: %s", shaped);
    return TL_OK;
}
