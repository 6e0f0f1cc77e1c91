#include "vec.h"

#include <string.h>

tl_wm *tl_vec_wm(tl_vec *v, const char *topic, int32_t partition)
{
    const tl_wm *w = tl_vec_wm_find(v, topic, partition);
    if (w) return (tl_wm *)w;
    v->wm = tl_xrealloc(v->wm, (v->nwm + 1) * sizeof *v->wm);
    tl_wm *n = &v->wm[v->nwm++];
    n->topic = tl_xstrdup(topic);
    n->partition = partition;
    n->applied = n->stored = -1;
    n->foreign = n->kept = 0;
    return n;
}

const tl_wm *tl_vec_wm_find(const tl_vec *v, const char *topic,
                            int32_t partition)
{
    for (size_t i = 0; i < v->nwm; i++)
        if (v->wm[i].partition == partition &&
            strcmp(v->wm[i].topic, topic) == 0)
            return &v->wm[i];
    return NULL;
}

int tl_wm_stale(const tl_wm *w, int64_t end)
{
    return w->foreign || (end >= 0 && w->applied >= end);
}

size_t tl_vec_check_cluster(tl_vec *v, uint64_t cluster)
{
    size_t n = 0;
    if (v->cluster && cluster && v->cluster != cluster)
        for (size_t i = 0; i < v->nwm; i++, n++) v->wm[i].foreign = 1;
    v->cluster = cluster;
    return n;
}

static void free_wms(tl_vec *v)
{
    for (size_t i = 0; i < v->nwm; i++) free(v->wm[i].topic);
    free(v->wm);
    v->wm = NULL;
    v->nwm = 0;
}

void tl_vec_apply(tl_vec *v, const tl_layout *l, const tl_event *ev)
{
    for (size_t k = 0; k < l->nfeatures; k++)
        if (tl_feature_apply(&l->features[k], v->block, ev, tl_event_fetch,
                             (void *)ev) && k < 64)
            v->changed |= UINT64_C(1) << k;
    if (!v->has_newest || ev->ts > v->newest) v->newest = ev->ts;
    v->has_newest = 1;
}

void tl_vec_reset(tl_vec *v, const tl_layout *l)
{
    memset(v->block, 0, l->block_size);
    free_wms(v);
    v->dirty = 0;
    v->changed = 0;
    v->has_newest = 0;
    v->newest = 0;
    v->cluster = 0;
}

static int name_is(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && memcmp(name, s, len) == 0;
}

int tl_vec_load_field(tl_vec *v, const tl_layout *l, const char *field,
                      size_t flen, const char *val, size_t vlen, char *err,
                      size_t errsz)
{
    /* Whatever Redis holds is rewritten whole at the next flush: fields an
     * older version or configuration wrote are brought up to date. */
    v->changed = UINT64_MAX;
    if (flen == 3 && memcmp(field, "_ts", 3) == 0) {
        if (tl_parse_i64(val, vlen, &v->newest))
            return tl_errf(err, errsz, TL_ERR_DECODE,
                           "malformed newest-event field _ts = '%.*s'",
                           (int)(vlen > 40 ? 40 : vlen), val);
        v->has_newest = 1;
        return TL_OK;
    }
    if (flen == 2 && memcmp(field, "_k", 2) == 0) {
        v->cluster = vlen ? tl_fnv1a(TL_FNV_OFFSET, val, vlen) : 0;
        return TL_OK;
    }
    if (flen < 3 || field[0] != '_' || field[2] != ':') return TL_OK;
    const char *name = field + 3;
    size_t nlen = flen - 3;
    switch (field[1]) {
    case 'f':
        for (size_t i = 0; i < l->nfeatures; i++)
            if (name_is(l->features[i].name, name, nlen))
                return tl_feature_load(&l->features[i], v->block, val, vlen,
                                       err, errsz);
        return TL_OK;
    case 'r':
        for (size_t i = 0; i < l->nrules; i++)
            if (name_is(l->rules[i].name, name, nlen))
                return tl_rule_load(&l->rules[i], v->block, val, vlen, err,
                                    errsz);
        return TL_OK;
    case 'c': {
        tl_channel ch;
        if (!l->ruleset || tl_channel_parse(name, nlen, &ch)) return TL_OK;
        return tl_ruleset_ledger_load(l->ruleset, ch, v->block, val, vlen, err,
                                      errsz);
    }
    case 'o': {
        /* _o:<topic>:<partition>; topic names cannot contain ':'. */
        const char *colon = memchr(name, ':', nlen);
        int64_t part, off;
        if (!colon ||
            tl_parse_i64(colon + 1, (size_t)(name + nlen - colon - 1), &part) ||
            part < 0 || part > INT32_MAX || tl_parse_i64(val, vlen, &off))
            /* Not a state to restart: without its watermark the vector
             * would count its events again, and the flush's
             * compare-and-set would refuse it anyway. */
            return tl_errf(err, errsz, TL_ERR,
                           "malformed watermark field '%.*s' = '%.*s'",
                           (int)flen, field, (int)(vlen > 40 ? 40 : vlen), val);
        char topic[256];
        size_t tlen = (size_t)(colon - name);
        if (tlen >= sizeof topic) return TL_OK;
        memcpy(topic, name, tlen);
        topic[tlen] = '\0';
        tl_wm *w = tl_vec_wm(v, topic, (int32_t)part);
        w->applied = w->stored = off;
        return TL_OK;
    }
    default:
        return TL_OK;
    }
}

size_t tl_vec_max_fields(const tl_layout *l)
{
    return 2 * l->nfeatures + l->nrules + 2 +
           (l->ruleset ? tl_ruleset_nledgers(l->ruleset) : 0);
}

size_t tl_vec_max_dels(const tl_layout *l) { return 2 * l->nfeatures; }

static const char *cat(tl_arena *a, const char *pre, const char *name,
                       size_t *len)
{
    size_t pl = strlen(pre), nl = strlen(name);
    char *s = tl_arena_alloc(a, pl + nl + 1);
    memcpy(s, pre, pl);
    memcpy(s + pl, name, nl + 1);
    *len = pl + nl;
    return s;
}

/* No watermark of the vector was ever stored: its key holds nothing of it
 * (a new customer, or one whose key Redis lost). */
static int never_stored(const tl_vec *v)
{
    for (size_t i = 0; i < v->nwm; i++)
        if (v->wm[i].stored >= 0) return 0;
    return 1;
}

size_t tl_vec_encode(const tl_vec *v, const tl_layout *l, tl_arena *arena,
                     const char **fields, size_t *flens, const char **vals,
                     size_t *vlens, const char **dels, size_t *dlens,
                     size_t *ndels)
{
    size_t n = 0, nd = 0;
    int64_t now = v->newest;
    int fresh = never_stored(v);
    for (size_t i = 0; i < l->nfeatures; i++) {
        const tl_feature *f = &l->features[i];
        int state = tl_feature_has_state(f);
        int changed = i >= 64 || (v->changed >> i & 1);
        int timed = tl_feature_follows_time(f);
        /* Fields that are in Redis as they would be written again: the
         * flush script's cost grows with the fields it sets, and an event
         * typically changes a few features of many.  A vector never
         * stored has nothing in Redis yet: the features no event set get
         * what rules read for them, a count's 0 (and no state: none is
         * none), or nothing at all. */
        if (!changed && !timed &&
            !(fresh && !tl_feature_live(f, v->block, now)))
            continue;
        char small[TL_NUMBUF];
        /* Most values fit the small buffer; long ones are formatted again at
         * their full length.  -1: the feature reads null. */
        int rl = v->has_newest
                     ? tl_feature_format(f, v->block, now, small, sizeof small)
                     : -1;
        if (rl < 0) {
            /* Expired by ttl, or never set (nothing to delete, but HDEL of
             * an absent field is free): its fields must go. */
            if (!changed && !timed) continue; /* fresh: nothing stored */
            dels[nd] = f->name;
            dlens[nd++] = strlen(f->name);
            if (state) dels[nd] = cat(arena, "_f:", f->name, &dlens[nd]), nd++;
            continue;
        }
        char *r = tl_arena_alloc(arena, (size_t)rl + 1);
        if ((size_t)rl < sizeof small)
            memcpy(r, small, (size_t)rl + 1);
        else
            tl_feature_format(f, v->block, now, r, (size_t)rl + 1);
        fields[n] = f->name;
        flens[n] = strlen(f->name);
        vals[n] = r;
        vlens[n++] = (size_t)rl;
        /* Only time moved: the value is new, the state as stored. */
        if (!state || !changed) continue;
        char *s = tl_arena_alloc(arena, tl_feature_save_size(f));
        vlens[n] = tl_feature_save(f, v->block, s);
        vals[n] = s;
        fields[n] = cat(arena, "_f:", f->name, &flens[n]);
        n++;
    }
    for (size_t i = 0; i < l->nrules; i++) {
        const tl_rule *r = &l->rules[i];
        const unsigned char *s = v->block + r->offset;
        size_t k = 0;
        while (k < r->size && !s[k]) k++;
        if (k == r->size) continue; /* untouched rule state */
        char *t = tl_arena_alloc(arena, tl_rule_save_size(r));
        vlens[n] = tl_rule_save(r, v->block, t);
        vals[n] = t;
        fields[n] = cat(arena, "_r:", r->name, &flens[n]);
        n++;
    }
    for (size_t i = 0; l->ruleset && i < tl_ruleset_nledgers(l->ruleset); i++) {
        if (!tl_ruleset_ledger_used(l->ruleset, i, v->block)) continue;
        char *t = tl_arena_alloc(arena, tl_ruleset_ledger_save_size(l->ruleset, i));
        vlens[n] = tl_ruleset_ledger_save(l->ruleset, i, v->block, t);
        vals[n] = t;
        fields[n] = cat(arena, "_c:",
                        tl_channel_name(tl_ruleset_ledger_channel(l->ruleset, i)),
                        &flens[n]);
        n++;
    }
    if (v->has_newest) {
        char *t = tl_arena_alloc(arena, TL_NUMBUF);
        vlens[n] = (size_t)snprintf(t, TL_NUMBUF, "%lld", (long long)v->newest);
        vals[n] = t;
        fields[n] = "_ts";
        flens[n++] = 3;
    }
    if (l->cluster_id && v->nwm) {
        fields[n] = "_k";
        flens[n] = 2;
        vals[n] = l->cluster_id;
        vlens[n++] = strlen(l->cluster_id);
    }
    *ndels = nd;
    return n;
}

/*
 * Redis Cluster hashes a key by its tag: the bytes between the first '{'
 * and the first '}' after it.  An id with a brace would end the tag early,
 * so "victim}1", "victim}2", ... would all hash as "victim", on one slot.
 *
 * An id without a brace keeps the key it always had, <prefix>cx:{id}, byte
 * for byte: stored vectors of existing deployments are found.  An id with
 * a brace is percent-escaped ('%' as %25, '{' as %7B, '}' as %7D) inside a
 * tag marked by a '%' before it, <prefix>cx:%{escaped}; the escaped id has
 * no brace, so the tag is the whole id and such ids spread over the slots.
 *
 * The map is injective.  Two plain keys are equal only for equal ids.  Two
 * marked keys are equal only if the escaped ids are, and escaping replaces
 * each byte by a code from a prefix-free set (one byte other than '%', '{',
 * '}'; or '%' and two hex digits), which decodes in exactly one way.  And a
 * plain key never equals a marked one: after the common prefix, one goes on
 * "cx:{" and the other "cx:%".  Ids without a brace are never escaped, so a
 * plain id that looks escaped ("a%7Db") keeps its key, distinct from that
 * of "a}b" by the mark.
 */
static int needs_escape(char c) { return c == '%' || c == '{' || c == '}'; }

char *tl_vec_key(tl_arena *arena, const char *prefix, const char *id,
                 size_t idlen, size_t *keylen)
{
    size_t pl = strlen(prefix), extra = 0;
    int brace = memchr(id, '{', idlen) || memchr(id, '}', idlen);
    if (brace)
        for (size_t i = 0; i < idlen; i++) extra += needs_escape(id[i]) ? 2 : 0;
    size_t n = pl + (size_t)brace + idlen + extra + 5;
    char *k = tl_arena_alloc(arena, n + 1), *o = k + pl;
    memcpy(k, prefix, pl);
    memcpy(o, brace ? "cx:%{" : "cx:{", 4u + (size_t)brace);
    o += 4 + brace;
    if (!brace) {
        memcpy(o, id, idlen);
        o += idlen;
    } else {
        for (size_t i = 0; i < idlen; i++) {
            if (!needs_escape(id[i])) {
                *o++ = id[i];
                continue;
            }
            *o++ = '%';
            memcpy(o, id[i] == '%' ? "25" : id[i] == '{' ? "7B" : "7D", 2);
            o += 2;
        }
    }
    memcpy(o, "}", 2);
    *keylen = n;
    return k;
}

void tl_vec_free(tl_vec *v)
{
    if (!v) return;
    free_wms(v);
    free(v->customer_id);
    free(v->block);
    free(v);
}
