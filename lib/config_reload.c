/*
 * config_reload — what a reload may change (tl_config_reloadable, config.h):
 * not the connections, which a reload does not reopen; not, without force,
 * a feature's existence or kind, which would leave its stored state
 * misread or behind.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
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

/* The features of cur that next removes or gives another kind, listed in
 * list ("a (count -> sum), b (removed)"); returns how many. */
static size_t changed_features(const tl_config *cur, const tl_config *next,
                               char *list, size_t size)
{
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < cur->nfeatures; i++) {
        const tl_feature *f = &cur->features[i], *g = NULL;
        for (size_t j = 0; !g && j < next->nfeatures; j++)
            if (!strcmp(next->features[j].name, f->name))
                g = &next->features[j];
        if (g && g->kind == f->kind) continue;
        const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
        const tl_feature_kind_info *gi =
            g ? tl_feature_kind_get(g->kind) : NULL;
        size_t l = strlen(list);
        if (g)
            snprintf(list + l, size - l, "%s%s (%s -> %s)", n ? ", " : "",
                     f->name, ki ? ki->name : "?", gi ? gi->name : "?");
        else
            snprintf(list + l, size - l, "%s%s (removed)", n ? ", " : "",
                     f->name);
        n++;
    }
    return n;
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
    char list[512];
    size_t n = changed_features(cur, next, list, sizeof list);
    if (n && !force)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "%s: refused: feature%s %s; stored state would be "
                       "misread or left behind (rename the feature instead, "
                       "or reload with force: tailord --force)",
                       next->path ? next->path : "", n > 1 ? "s" : "", list);
    if (n)
        tl_warn("config", "reload with force: feature%s %s (their stored "
                "state is read by the new kind where it parses, reset where "
                "it does not)", n > 1 ? "s" : "", list);
    return TL_OK;
}
