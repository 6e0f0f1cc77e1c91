#include "rule.h"

#include <string.h>

#include "common.h"

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

int tl_rule_finish(tl_rule *r, char *err, size_t errsz)
{
    if (r->cooldown_ms < 0)
        return tl_errf(err, errsz, TL_ERR_CONFIG, "cooldown must not be negative");
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
    free(r->explain);
    memset(r, 0, sizeof *r);
}
