#include "rule.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "tz.h"

/* ---- names -------------------------------------------------------------- */

int tl_names_resolve(void *ud, const char *name, const char *key,
                     uint32_t *var, tl_type *type)
{
    const tl_names *names = ud;
    /* event.<field> is the explicit spelling; it also reaches an event field
     * that a feature might otherwise be mistaken for. */
    if (strncmp(name, "event.", 6) == 0)
        return tl_event_resolve(NULL, name + 6, key, var, type);
    if (!key)
        for (size_t i = 0; i < names->nfeatures; i++)
            if (strcmp(names->features[i].name, name) == 0) {
                *var = TL_EVENT_VAR_LIMIT + (uint32_t)i;
                *type = names->features[i].type;
                return 0;
            }
    return tl_event_resolve(NULL, name, key, var, type);
}

/* Edit distance (insert, delete, substitute, swap two neighbours), or
 * more than max: names longer than 63 bytes are never close. */
static size_t distance(const char *a, const char *b, size_t max)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63 || (la > lb ? la - lb : lb - la) > max)
        return max + 1;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

/* "unknown name 'x'", with the closest of the event's fields and (when
 * features is set) the features' names if one is close: a typo at most a
 * third of the name's length. */
static int unknown_name(const tl_names *names, int features, const char *name,
                        char *msg, size_t size)
{
    size_t max = strlen(name) / 3, best = max + 1;
    const char *near = NULL;
    for (uint32_t v = 0; tl_event_var_name(v); v++) {
        size_t d = distance(name, tl_event_var_name(v), max);
        if (d < best) best = d, near = tl_event_var_name(v);
    }
    for (size_t i = 0; features && i < names->nfeatures; i++) {
        size_t d = distance(name, names->features[i].name, max);
        if (d < best) best = d, near = names->features[i].name;
    }
    if (near)
        snprintf(msg, size, "unknown name '%s'; did you mean '%s'?", name,
                 near);
    else
        snprintf(msg, size, "unknown name '%s'", name);
    return 1;
}

int tl_names_explain(void *ud, const char *name, char *msg, size_t size)
{
    return unknown_name(ud, 1, name, msg, size);
}

int tl_names_explain_when(void *ud, const char *name, char *msg, size_t size)
{
    const tl_names *names = ud;
    for (size_t i = 0; i < names->nfeatures; i++)
        if (strcmp(names->features[i].name, name) == 0) {
            /* `when` decides whether the event is one the rule is about,
             * before any feature is read (rule.h). */
            snprintf(msg, size,
                     "'%s' is a feature: features cannot be read in `when`; "
                     "move it to `if`", name);
            return 1;
        }
    return unknown_name(names, 0, name, msg, size);
}

void tl_eval_fetch(void *ud, uint32_t var, const char *key, size_t keylen,
                   tl_value *out)
{
    const tl_eval_ctx *c = ud;
    if (var < TL_EVENT_VAR_LIMIT) {
        tl_event_fetch((void *)c->ev, var, key, keylen, out);
        return;
    }
    tl_feature_read(&c->features[var - TL_EVENT_VAR_LIMIT], c->block,
                    c->ev->ts, out);
}

/* ---- templates ---------------------------------------------------------- */

int tl_template_compile(tl_template *t, const char *src, size_t len,
                        const tl_expr_scope *scope, size_t *err_offset,
                        char *err, size_t errsz)
{
    memset(t, 0, sizeof *t);
    size_t cap = 4, i = 0, lit = 0;
    t->parts = tl_xcalloc(cap, sizeof *t->parts);
    for (;;) {
        const char *open = NULL;
        for (size_t k = i; k + 1 < len; k++)
            if (src[k] == '{' && src[k + 1] == '{') {
                open = src + k;
                break;
            }
        if (t->nparts == cap) {
            cap *= 2;
            t->parts = tl_xrealloc(t->parts, cap * sizeof *t->parts);
        }
        tl_template_part *p = &t->parts[t->nparts];
        memset(p, 0, sizeof *p);
        if (!open) {
            p->lit = tl_xstrndup(src + lit, len - lit);
            p->litlen = len - lit;
            t->nparts++;
            return TL_OK;
        }
        size_t start = (size_t)(open - src) + 2, end = start;
        while (end + 1 < len && !(src[end] == '}' && src[end + 1] == '}')) end++;
        if (end + 1 >= len) {
            *err_offset = (size_t)(open - src);
            tl_template_clear(t);
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "'{{' without a closing '}}'");
        }
        size_t eoff = 0;
        char eerr[TL_ERRSZ];
        tl_expr *e = tl_expr_compile(src + start, end - start, scope, TL_T_NULL,
                                     &eoff, eerr, sizeof eerr);
        if (!e) {
            *err_offset = start + eoff;
            tl_template_clear(t);
            return tl_errf(err, errsz, TL_ERR_CONFIG, "%s", eerr);
        }
        p->lit = tl_xstrndup(src + lit, (size_t)(open - src) - lit);
        p->litlen = (size_t)(open - src) - lit;
        p->expr = e;
        t->nparts++;
        i = lit = end + 2;
    }
}

size_t tl_template_render(const tl_template *t, tl_expr_fetch fetch, void *ud,
                          char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nparts; i++) {
        const tl_template_part *p = &t->parts[i];
        if (n < size) {
            size_t c = p->litlen < size - n ? p->litlen : size - n;
            memcpy(buf + n, p->lit, c);
        }
        n += p->litlen;
        if (p->expr) {
            tl_value v;
            tl_expr_eval(p->expr, fetch, ud, &v);
            n += tl_value_format(&v, n < size ? buf + n : NULL,
                                 n < size ? size - n : 0);
        }
    }
    if (size) buf[n < size ? n : size - 1] = '\0';
    return n;
}

void tl_template_clear(tl_template *t)
{
    if (!t || !t->parts) return;
    for (size_t i = 0; i < t->nparts; i++) {
        free(t->parts[i].lit);
        tl_expr_free(t->parts[i].expr);
    }
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
}

/* ---- rules -------------------------------------------------------------- */

static const char *const mode_names[] = {"every", "edge", "once"};

const char *tl_rule_mode_name(tl_rule_mode m)
{
    return (unsigned)m < 3 ? mode_names[m] : "?";
}

int tl_rule_mode_parse(const char *s, tl_rule_mode *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, mode_names[i]) == 0) {
            *out = (tl_rule_mode)i;
            return 0;
        }
    return -1;
}

/* A rule's slice: when it last fired (event time), whether it ever fired,
 * and the last value of its condition (for edge mode). */
typedef struct rstate {
    int64_t last_fired;
    uint8_t fired;
    uint8_t last_cond;
    uint8_t pad[6];
} rstate;

static void add_explain(void *ud, uint32_t var, const char *key)
{
    tl_rule *r = ud;
    if (key || var < TL_EVENT_VAR_LIMIT) return;
    r->explain = tl_xrealloc(r->explain, (r->nexplain + 1) * sizeof *r->explain);
    r->explain[r->nexplain++] = var - TL_EVENT_VAR_LIMIT;
}

/* Semantic checks of cap and quiet hours (the config loader checked the
 * syntax), and the literal quiet-hours zone, loaded here once so that a
 * misspelt zone fails at load time and evaluation reads no file. */
static int finish_options(tl_rule *r, char *err, size_t errsz)
{
    if (r->has_cap) {
        if (r->cap.max < 1 || r->cap.max > 1000)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "cap.max must be from 1 to 1000, got %u",
                           r->cap.max);
        if (r->cap.per_ms <= 0)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "cap.per must be a positive duration");
        if ((unsigned)r->cap.channel >= TL_CH__COUNT)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "cap.channel is not a channel");
    }
    if (!(r->holdout >= 0 && r->holdout <= 1)) /* also NaN */
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "holdout must be a share from 0%% to 100%%");
    if (!r->has_quiet) return TL_OK;
    const tl_quiet *q = &r->quiet;
    if (q->from_min < 0 || q->from_min > 1439 || q->to_min < 0 ||
        q->to_min > 1439)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "quiet_hours: from and to must be times of day from "
                       "00:00 to 23:59");
    if (q->tz_name && q->tz_expr)
        return tl_errf(err, errsz, TL_ERR_CONFIG,
                       "quiet_hours.tz: a zone name or an expression, not "
                       "both");
    if (q->tz_expr) {
        if (tl_expr_type(q->tz_expr) != TL_T_STR)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "quiet_hours.tz: the expression must yield a "
                           "string (a zone name), got %s",
                           tl_type_name(tl_expr_type(q->tz_expr)));
        return TL_OK;
    }
    /* No tz at all means UTC. */
    const char *name = q->tz_name ? q->tz_name : "UTC";
    char msg[TL_ERRSZ];
    tl_tz *z = tl_tz_load(name, strlen(name), msg, sizeof msg);
    if (!z)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "quiet_hours.tz: %s", msg);
    r->quiet_zone = z;
    return TL_OK;
}

int tl_rule_finish(tl_rule *r, char *err, size_t errsz)
{
    if (r->cooldown_ms < 0)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "cooldown must not be negative");
    tl_tz_free(r->quiet_zone);
    r->quiet_zone = NULL;
    int rc = finish_options(r, err, errsz);
    if (rc != TL_OK) return rc;
    free(r->explain);
    r->explain = NULL;
    r->nexplain = 0;
    if (r->cond) tl_expr_vars(r->cond, add_explain, r);
    r->size = sizeof(rstate);
    return TL_OK;
}

size_t tl_rules_layout(tl_rule *rs, size_t n, size_t base)
{
    size_t off = (base + 7) & ~(size_t)7;
    for (size_t i = 0; i < n; i++) {
        rs[i].offset = off;
        off += rs[i].size;
    }
    return off;
}

void tl_rule_reset(const tl_rule *r, unsigned char *block)
{
    memset(block + r->offset, 0, r->size);
}

int tl_rule_eval(const tl_rule *r, unsigned char *block, const tl_event *ev,
                 tl_expr_fetch fetch, void *ud)
{
    rstate *st = (rstate *)(block + r->offset);
    if (r->when && !tl_expr_true(r->when, fetch, ud)) return 0;
    int cond = r->cond ? tl_expr_true(r->cond, fetch, ud) : 1;
    int was = st->last_cond;
    st->last_cond = (uint8_t)cond;
    if (!cond) return 0;
    switch (r->mode) {
    case TL_MODE_EDGE:
        if (was) return 0;
        break;
    case TL_MODE_ONCE:
        if (st->fired) return 0;
        break;
    default:
        break;
    }
    /* Cooldown in event time; an event older than the last firing (late or
     * out of order) is inside the cooldown too. */
    if (r->cooldown_ms && st->fired && ev->ts - st->last_fired < r->cooldown_ms)
        return 0;
    st->fired = 1;
    st->last_fired = ev->ts;
    return 1;
}

size_t tl_rule_save_size(const tl_rule *r)
{
    (void)r;
    return TL_NUMBUF + 8;
}

size_t tl_rule_save(const tl_rule *r, const unsigned char *block, char *buf)
{
    const rstate *st = (const rstate *)(block + r->offset);
    return (size_t)sprintf(buf, "%d;%lld;%d", st->fired,
                           (long long)st->last_fired, st->last_cond);
}

int tl_rule_load(const tl_rule *r, unsigned char *block, const char *text,
                 size_t len, char *err, size_t errsz)
{
    rstate *st = (rstate *)(block + r->offset);
    char tmp[64];
    tl_rule_reset(r, block);
    if (len >= sizeof tmp) goto bad;
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    int fired, cond, used = 0;
    long long last;
    if (sscanf(tmp, "%d;%lld;%d%n", &fired, &last, &cond, &used) != 3 ||
        (size_t)used != len || (fired != 0 && fired != 1) ||
        (cond != 0 && cond != 1))
        goto bad;
    st->fired = (uint8_t)fired;
    st->last_fired = last;
    st->last_cond = (uint8_t)cond;
    return TL_OK;
bad:
    return tl_errf(err, errsz, TL_ERR_DECODE,
                   "rule %s: malformed stored state '%.*s'", r->name,
                   (int)(len > 60 ? 60 : len), text);
}

void tl_rule_clear(tl_rule *r)
{
    if (!r) return;
    free(r->name);
    tl_expr_free(r->when);
    tl_expr_free(r->cond);
    tl_template_clear(&r->message);
    for (size_t i = 0; i < r->nattrs; i++) {
        free(r->attrs[i].key);
        tl_template_clear(&r->attrs[i].value);
    }
    free(r->attrs);
    free(r->group);
    free(r->quiet.tz_name);
    tl_expr_free(r->quiet.tz_expr);
    tl_tz_free(r->quiet_zone);
    free(r->explain);
    memset(r, 0, sizeof *r);
}

/* ---- rule set ----------------------------------------------------------- */

static const char *const sup_names[TL_SUP__COUNT] = {
    "none", "cooldown", "quiet_hours", "cap", "group"};

const char *tl_suppress_name(tl_suppress s)
{
    return (unsigned)s < TL_SUP__COUNT ? sup_names[s] : "?";
}

/* A send ledger in the block: the times (event time) of the customer's
 * latest triggers on one channel, newest first.  Only the newest `depth`
 * matter: a cap of at most depth triggers is reached as soon as depth of
 * them are in its window, whatever older ones there were. */
typedef struct ledger {
    uint32_t count;
    uint32_t pad;
    int64_t t[];
} ledger;

/* Zones named by quiet_hours tz expressions, loaded on first sight.  A
 * name that is no zone is cached too (zone NULL, read as UTC), so that a
 * bad attribute value costs a file lookup once, not per event. */
#define ZCACHE 64
#define ZNAME_MAX 255 /* longer names are no tz database name */

typedef struct zslot {
    uint64_t hash;
    char *name; /* owned */
    size_t len;
    tl_tz *zone; /* owned; NULL: unknown zone */
} zslot;

typedef struct rs_scratch {
    uint32_t *order;       /* rule indexes by priority, highest first; ties
                              in config order */
    int32_t *group;        /* per rule: its group's index, -1: none */
    unsigned char *cand;   /* per rule: candidate left after step 2 */
    unsigned char *gfired; /* per group: fired on this event */
    size_t ngroups;
    tl_tz *utc;
    zslot zones[ZCACHE];
    size_t nzones, zclock; /* used slots; next slot to replace when full */
} rs_scratch;

int tl_ruleset_init(tl_ruleset *rs, tl_rule *rules, size_t n, size_t base,
                    char *err, size_t errsz)
{
    memset(rs, 0, sizeof *rs);
    /* Checked again here, as the depth of a ledger depends on them. */
    for (size_t i = 0; i < n; i++) {
        const tl_rule *r = &rules[i];
        if (!r->has_cap) continue;
        if ((unsigned)r->cap.channel >= TL_CH__COUNT || r->cap.max < 1 ||
            r->cap.max > 1000 || r->cap.per_ms <= 0)
            return tl_errf(err, errsz, TL_ERR_CONFIG,
                           "trigger %s: cap needs max 1..1000, a positive "
                           "per and a channel",
                           r->name ? r->name : "?");
        if (r->cap.max > rs->depth[r->cap.channel])
            rs->depth[r->cap.channel] = r->cap.max;
    }
    size_t off = tl_rules_layout(rules, n, base);
    for (int ch = 0; ch < TL_CH__COUNT; ch++) {
        if (!rs->depth[ch]) continue;
        rs->ledger_off[ch] = off;
        off += sizeof(ledger) + (size_t)rs->depth[ch] * sizeof(int64_t);
    }
    rs->rules = rules;
    rs->nrules = n;
    rs->end = off;

    rs_scratch *sc = tl_xcalloc(1, sizeof *sc);
    sc->order = tl_xcalloc(n, sizeof *sc->order);
    sc->group = tl_xcalloc(n, sizeof *sc->group);
    sc->cand = tl_xcalloc(n, 1);
    sc->gfired = tl_xcalloc(n, 1);
    /* Stable insertion sort: priorities are fixed, so the order is
     * computed once and evaluation only walks it. */
    for (size_t i = 0; i < n; i++) {
        size_t k = i;
        while (k > 0 && rules[sc->order[k - 1]].priority < rules[i].priority) {
            sc->order[k] = sc->order[k - 1];
            k--;
        }
        sc->order[k] = (uint32_t)i;
    }
    for (size_t i = 0; i < n; i++) {
        sc->group[i] = -1;
        if (!rules[i].group) continue;
        for (size_t k = 0; k < i; k++)
            if (rules[k].group && strcmp(rules[k].group, rules[i].group) == 0) {
                sc->group[i] = sc->group[k];
                break;
            }
        if (sc->group[i] < 0) sc->group[i] = (int32_t)sc->ngroups++;
    }
    sc->utc = tl_tz_load("UTC", 3, NULL, 0);
    rs->scratch = sc;
    return TL_OK;
}

void tl_ruleset_clear(tl_ruleset *rs)
{
    if (!rs) return;
    rs_scratch *sc = rs->scratch;
    if (sc) {
        free(sc->order);
        free(sc->group);
        free(sc->cand);
        free(sc->gfired);
        tl_tz_free(sc->utc);
        for (size_t i = 0; i < sc->nzones; i++) {
            free(sc->zones[i].name);
            tl_tz_free(sc->zones[i].zone);
        }
        free(sc);
    }
    memset(rs, 0, sizeof *rs);
}

/* The zone a tz expression named; UTC for an unknown one. */
static const tl_tz *zone_lookup(rs_scratch *sc, const char *name, size_t len)
{
    if (len == 0 || len > ZNAME_MAX) return sc->utc;
    uint64_t h = tl_fnv1a(TL_FNV_OFFSET, name, len);
    for (size_t i = 0; i < sc->nzones; i++) {
        const zslot *z = &sc->zones[i];
        if (z->hash == h && z->len == len && memcmp(z->name, name, len) == 0)
            return z->zone ? z->zone : sc->utc;
    }
    zslot *z;
    if (sc->nzones < ZCACHE) {
        z = &sc->zones[sc->nzones++];
    } else {
        /* Full: replace slots in turn.  Only a config whose customers span
         * more than ZCACHE zones ever gets here; it then reloads zones but
         * stays bounded. */
        z = &sc->zones[sc->zclock];
        sc->zclock = (sc->zclock + 1) % ZCACHE;
        free(z->name);
        tl_tz_free(z->zone);
    }
    z->hash = h;
    z->name = tl_xstrndup(name, len);
    z->len = len;
    z->zone = tl_tz_load(name, len, NULL, 0);
    return z->zone ? z->zone : sc->utc;
}

/* Whether the event's local time is in the rule's quiet hours.  from == to
 * is an empty span: never quiet. */
static int in_quiet(rs_scratch *sc, const tl_rule *r, const tl_event *ev,
                    tl_expr_fetch fetch, void *ud)
{
    const tl_quiet *q = &r->quiet;
    if (q->from_min == q->to_min) return 0;
    const tl_tz *z = r->quiet_zone ? r->quiet_zone : sc->utc;
    if (q->tz_expr) {
        tl_value v;
        tl_expr_eval(q->tz_expr, fetch, ud, &v);
        z = v.type == TL_T_STR ? zone_lookup(sc, v.u.str.ptr, v.u.str.len)
                               : sc->utc;
    }
    int m;
    if (tl_tz_local_minutes(z, ev->ts, &m) != 0) return 0;
    if (q->from_min < q->to_min) return m >= q->from_min && m < q->to_min;
    return m >= q->from_min || m < q->to_min; /* wraps midnight */
}

static ledger *ledger_at(const tl_ruleset *rs, tl_channel ch,
                         unsigned char *block)
{
    return (ledger *)(block + rs->ledger_off[ch]);
}

/* Triggers on the ledger's channel within (now - per, ...]: later ones (an
 * out-of-order event) count too, which errs toward sending less. */
static int cap_reached(const tl_ruleset *rs, const tl_cap *cap,
                       unsigned char *block, int64_t now)
{
    if (!rs->depth[cap->channel]) return 0;
    const ledger *l = ledger_at(rs, cap->channel, block);
    int64_t since = now >= INT64_MIN + cap->per_ms ? now - cap->per_ms
                                                   : INT64_MIN;
    uint32_t k = 0;
    while (k < l->count && l->t[k] > since) k++;
    return k >= cap->max;
}

/* Inserts ts keeping newest first; the oldest falls off a full ledger. */
static void ledger_record(ledger *l, uint32_t depth, int64_t ts)
{
    uint32_t n = l->count < depth ? l->count : depth, pos = 0;
    while (pos < n && l->t[pos] > ts) pos++;
    if (pos >= depth) return; /* older than all of a full ledger */
    uint32_t keep = n < depth ? n : depth - 1;
    memmove(&l->t[pos + 1], &l->t[pos], (size_t)(keep - pos) * sizeof l->t[0]);
    l->t[pos] = ts;
    l->count = keep + 1;
}

size_t tl_ruleset_eval(const tl_ruleset *rs, unsigned char *block,
                       const tl_event *ev, tl_expr_fetch fetch, void *ud,
                       tl_firing *out, tl_suppress *why)
{
    rs_scratch *sc = rs->scratch;
    size_t n = rs->nrules, nout = 0;
    if (sc->ngroups) memset(sc->gfired, 0, sc->ngroups);
    /* Steps 1 and 2, in config order. */
    for (size_t i = 0; i < n; i++) {
        const tl_rule *r = &rs->rules[i];
        rstate *st = (rstate *)(block + r->offset);
        why[i] = TL_SUP_NONE;
        sc->cand[i] = 0;
        if (r->when && !tl_expr_true(r->when, fetch, ud)) continue;
        int cond = r->cond ? tl_expr_true(r->cond, fetch, ud) : 1;
        int cand = cond && !(r->mode == TL_MODE_EDGE && st->last_cond) &&
                   !(r->mode == TL_MODE_ONCE && st->fired);
        if (!cand) {
            st->last_cond = (uint8_t)cond;
            continue;
        }
        /* A candidate's memory changes only if it fires, so that a
         * suppressed edge or once rule is still armed on the next event. */
        if (r->cooldown_ms && st->fired &&
            ev->ts - st->last_fired < r->cooldown_ms)
            why[i] = TL_SUP_COOLDOWN;
        else if (r->has_quiet && in_quiet(sc, r, ev, fetch, ud))
            why[i] = TL_SUP_QUIET_HOURS;
        else
            sc->cand[i] = 1;
    }
    /* Step 3, by priority: earlier firings of this event count for the
     * group and for the ledgers the later ones check. */
    for (size_t k = 0; k < n; k++) {
        uint32_t i = sc->order[k];
        if (!sc->cand[i]) continue;
        const tl_rule *r = &rs->rules[i];
        int32_t g = sc->group[i];
        if (g >= 0 && sc->gfired[g]) {
            why[i] = TL_SUP_GROUP;
            continue;
        }
        if (r->has_cap && cap_reached(rs, &r->cap, block, ev->ts)) {
            why[i] = TL_SUP_CAP;
            continue;
        }
        rstate *st = (rstate *)(block + r->offset);
        st->fired = 1;
        st->last_fired = ev->ts;
        st->last_cond = 1;
        tl_channel ch = r->has_channel ? r->channel : ev->channel;
        if ((unsigned)ch < TL_CH__COUNT && rs->depth[ch])
            ledger_record(ledger_at(rs, ch, block), rs->depth[ch], ev->ts);
        if (g >= 0) sc->gfired[g] = 1;
        out[nout].rule = r;
        out[nout].channel = ch;
        out[nout].holdout =
            tl_rule_in_holdout(r, ev->customer_id, ev->customer_id_len);
        nout++;
    }
    return nout;
}

int tl_rule_in_holdout(const tl_rule *r, const char *customer_id,
                       size_t idlen)
{
    if (!(r->holdout > 0)) return 0;
    if (r->holdout >= 1) return 1;
    uint64_t h = tl_fnv1a(TL_FNV_OFFSET, customer_id, idlen);
    h = tl_fnv1a(h, "", 1); /* the "\0" separator */
    h = tl_fnv1a(h, r->name, strlen(r->name));
    return (double)h * 0x1p-64 < r->holdout;
}

size_t tl_ruleset_nledgers(const tl_ruleset *rs)
{
    size_t k = 0;
    for (int ch = 0; ch < TL_CH__COUNT; ch++) k += rs->depth[ch] != 0;
    return k;
}

tl_channel tl_ruleset_ledger_channel(const tl_ruleset *rs, size_t i)
{
    for (int ch = 0; ch < TL_CH__COUNT; ch++)
        if (rs->depth[ch] && i-- == 0) return (tl_channel)ch;
    tl_assert_fail("ledger index < tl_ruleset_nledgers", __FILE__, __LINE__);
}

int tl_ruleset_ledger_used(const tl_ruleset *rs, size_t i,
                           const unsigned char *block)
{
    tl_channel ch = tl_ruleset_ledger_channel(rs, i);
    return ledger_at(rs, ch, (unsigned char *)block)->count != 0;
}

size_t tl_ruleset_ledger_save_size(const tl_ruleset *rs, size_t i)
{
    /* Per entry at most 20 characters ("-9223372036854775808") and a comma;
     * the last comma's room holds the NUL. */
    return (size_t)rs->depth[tl_ruleset_ledger_channel(rs, i)] * 21 + 1;
}

size_t tl_ruleset_ledger_save(const tl_ruleset *rs, size_t i,
                              const unsigned char *block, char *buf)
{
    tl_channel ch = tl_ruleset_ledger_channel(rs, i);
    const ledger *l = ledger_at(rs, ch, (unsigned char *)block);
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t k = 0; k < l->count && k < rs->depth[ch]; k++)
        n += (size_t)sprintf(buf + n, "%s%lld", k ? "," : "",
                             (long long)l->t[k]);
    return n;
}

int tl_ruleset_ledger_load(const tl_ruleset *rs, tl_channel ch,
                           unsigned char *block, const char *text, size_t len,
                           char *err, size_t errsz)
{
    /* A channel no rule caps any more: its old ledger is of no use. */
    if ((unsigned)ch >= TL_CH__COUNT || !rs->depth[ch]) return TL_OK;
    ledger *l = ledger_at(rs, ch, block);
    uint32_t depth = rs->depth[ch];
    memset(l, 0, sizeof *l + (size_t)depth * sizeof l->t[0]);
    size_t pos = 0, k = 0;
    int64_t prev = INT64_MAX;
    if (len == 0) goto bad;
    while (pos <= len) {
        const char *c = memchr(text + pos, ',', len - pos);
        size_t end = c ? (size_t)(c - text) : len;
        int64_t t;
        /* strtoll's leading blanks and '+' are not what save writes. */
        if (end == pos || (text[pos] != '-' && (text[pos] < '0' || text[pos] > '9')) ||
            tl_parse_i64(text + pos, end - pos, &t) != 0 || t > prev)
            goto bad;
        /* A cap lowered since the save: only the newest depth matter. */
        if (k < depth) l->t[k] = t;
        k++;
        prev = t;
        pos = end + 1;
    }
    l->count = (uint32_t)(k < depth ? k : depth);
    return TL_OK;
bad:
    memset(l, 0, sizeof *l + (size_t)depth * sizeof l->t[0]);
    return tl_errf(err, errsz, TL_ERR_DECODE,
                   "send ledger of channel %s: malformed stored state '%.*s' "
                   "(expected times newest first, comma-separated)",
                   tl_channel_name(ch), (int)(len > 60 ? 60 : len), text);
}
