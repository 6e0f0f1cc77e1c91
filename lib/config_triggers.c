/*
 * config_triggers — the triggers section: a list of rules (rule.h), each a
 * name, the `when` and `if` expressions, how often it may fire (mode,
 * cooldown, cap, quiet_hours, group and priority, holdout) and what it
 * emits (channel, message and attrs templates), compiled into
 * L->c->rules.  Each rule also gets its version: a hash of its own text in
 * the file.  Messages name the rule as triggers[i].
 */
#include "config_int.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common.h"
#include "event.h"
#include "rule.h"

#define CAP_MAX 1000            /* cap: max */
#define PRIORITY_MAX 1000       /* priority: -1000 to 1000 */

/* ---- trigger options ----------------------------------------------------- */

static int get_channel(loader *L, const yaml_node_t *n, const char *at,
                       tl_channel *out)
{
    char list[160] = "";
    for (int ch = 0; ch < TL_CH__COUNT; ch++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 ch ? ", " : "", tl_channel_name((tl_channel)ch));
    if (n->type != YAML_SCALAR_NODE ||
        tl_channel_parse(scalar(n), scalar_len(n), out) != 0)
        return tl_config_yaml_choice(L, n, at, "channel", list);
    return TL_OK;
}

/* cap: {max, per, channel}; a missing channel is the rule's emit.channel,
 * which load_trigger fills in once emit is read (*chan: the channel node). */
static int load_cap(loader *L, yaml_node_t *n, const char *at, tl_rule *r,
                    yaml_node_t **chan)
{
    static const char *const keys[] = {"max", "per", "channel"};
    yaml_node_t *v[3];
    char path[64], sub[80];
    int64_t x;
    int rc;
    snprintf(path, sizeof path, "%s.cap", at);
    if ((rc = tl_config_yaml_want_map(
             L, n, path, "a mapping with max, per and optional channel")) ||
        (rc = tl_config_yaml_map(L, n, path, keys, 3, v)))
        return rc;
    if (!v[0])
        return fail_node(L, n,
                         "%s: missing required key 'max' (the most triggers "
                         "per period, e.g. max: 3)",
                         path);
    if (!v[1])
        return fail_node(L, n,
                         "%s: missing required key 'per' (the period, e.g. "
                         "per: 7d)",
                         path);
    snprintf(sub, sizeof sub, "%s.max", path);
    if ((rc = tl_config_yaml_int(L, v[0], sub, 1, CAP_MAX, &x))) return rc;
    r->cap.max = (uint32_t)x;
    snprintf(sub, sizeof sub, "%s.per", path);
    if ((rc = tl_config_yaml_duration(L, v[1], sub, 1, 0, &r->cap.per_ms)))
        return rc;
    if (v[2] && (rc = get_channel(L, v[2], path, &r->cap.channel))) return rc;
    *chan = v[2];
    r->has_cap = 1;
    return TL_OK;
}

/* "HH:MM", 00:00 to 23:59: minutes after midnight. */
static int get_time_of_day(loader *L, const yaml_node_t *n, const char *path,
                           int *out)
{
    char got[96];
    const char *s = n->type == YAML_SCALAR_NODE ? scalar(n) : "";
    int ok = n->type == YAML_SCALAR_NODE && scalar_len(n) == 5 && s[2] == ':';
    for (int i = 0; ok && i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9')) ok = 0;
    int h = ok ? (s[0] - '0') * 10 + (s[1] - '0') : 0;
    int m = ok ? (s[3] - '0') * 10 + (s[4] - '0') : 0;
    if (!ok || h > 23 || m > 59)
        return fail_node(L, n,
                         "%s: expected a time of day HH:MM from 00:00 to "
                         "23:59, got %s",
                         path, tl_config_yaml_describe(n, got, sizeof got));
    *out = h * 60 + m;
    return TL_OK;
}

/* What a tz database zone name is made of ("Europe/Madrid", "Etc/GMT+1");
 * anything else in quiet_hours.tz makes it an expression. */
static int is_zone_name(const char *s, size_t len)
{
    if (!len) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '+' ||
              ch == '-' || ch == '/'))
            return 0;
    }
    return 1;
}

/* quiet_hours: {from, to, tz}; *tz: the tz node (for tl_rule_finish's
 * unknown-zone message), or NULL. */
static int load_quiet(loader *L, yaml_node_t *n, const char *at, tl_rule *r,
                      rule_text *txt, const tl_expr_scope *scope,
                      yaml_node_t **tz)
{
    static const char *const keys[] = {"from", "to", "tz"};
    yaml_node_t *v[3];
    char path[64], sub[80], got[96];
    int rc;
    snprintf(path, sizeof path, "%s.quiet_hours", at);
    if ((rc = tl_config_yaml_want_map(
             L, n, path, "a mapping with from, to and optional tz")) ||
        (rc = tl_config_yaml_map(L, n, path, keys, 3, v)))
        return rc;
    if (!v[0])
        return fail_node(L, n,
                         "%s: missing required key 'from' (the start of the "
                         "quiet time, e.g. from: \"22:00\")",
                         path);
    if (!v[1])
        return fail_node(L, n,
                         "%s: missing required key 'to' (the end of the quiet "
                         "time, e.g. to: \"08:00\")",
                         path);
    snprintf(sub, sizeof sub, "%s.from", path);
    if ((rc = get_time_of_day(L, v[0], sub, &r->quiet.from_min))) return rc;
    snprintf(sub, sizeof sub, "%s.to", path);
    if ((rc = get_time_of_day(L, v[1], sub, &r->quiet.to_min))) return rc;
    if (r->quiet.to_min == r->quiet.from_min)
        return fail_node(L, v[1],
                         "%s: the same time as 'from' (the quiet time would "
                         "be empty)",
                         sub);
    *tz = v[2];
    if (!v[2]) {
        r->quiet.tz_name = tl_xstrdup("UTC");
    } else {
        yaml_node_t *t = v[2];
        snprintf(sub, sizeof sub, "%s.tz", path);
        if (t->type != YAML_SCALAR_NODE || is_null(t) || !scalar_len(t))
            return fail_node(L, t,
                             "%s: expected a time zone name or a string "
                             "expression, got %s",
                             sub, tl_config_yaml_describe(t, got, sizeof got));
        if (is_zone_name(scalar(t), scalar_len(t)))
            r->quiet.tz_name = tl_xstrndup(scalar(t), scalar_len(t));
        else if ((rc = tl_config_yaml_expr(L, t, sub, scope, TL_T_STR,
                                           &r->quiet.tz_expr, &txt->tz)))
            return rc;
    }
    r->has_quiet = 1;
    return TL_OK;
}

/* holdout: "10%" (0% to 100%) or a number from 0 to 1, as a share.  Both are
 * decimals without sign or exponent; "12.5%" is read as 12.5e-2, so that it
 * is exactly the double 0.125 would be. */
static int get_share(loader *L, const yaml_node_t *n, const char *path,
                     double *out)
{
    char got[96], buf[64];
    int scal = n->type == YAML_SCALAR_NODE;
    const char *s = scal ? scalar(n) : "";
    size_t len = scal ? scalar_len(n) : 0;
    int pct = len > 0 && s[len - 1] == '%';
    size_t nlen = len - (size_t)pct, digits = 0, dots = 0;
    int ok = nlen > 0 && nlen + 4 <= sizeof buf;
    for (size_t i = 0; ok && i < nlen; i++) {
        if (s[i] >= '0' && s[i] <= '9') digits++;
        else if (s[i] == '.' && !dots) dots++;
        else ok = 0;
    }
    double v = 0;
    if (ok && digits) {
        memcpy(buf, s, nlen);
        buf[nlen] = '\0';
        if (pct) memcpy(buf + nlen, "e-2", 4);
        ok = tl_parse_double(buf, strlen(buf), &v) == 0 && v >= 0 && v <= 1;
    } else {
        ok = 0;
    }
    if (!ok)
        return fail_node(L, n,
                         "%s: expected a share: a percentage from 0%% to 100%% "
                         "(e.g. 10%%) or a number from 0 to 1, got %s",
                         path, tl_config_yaml_describe(n, got, sizeof got));
    *out = v;
    return TL_OK;
}

/* emit.attrs: attribute name -> template, in file order. */
static int load_attrs(loader *L, yaml_node_t *n, const char *at, tl_rule *r,
                      rule_text *txt, const tl_expr_scope *scope)
{
    char path[64], kpath[80], vpath[160], got[96], msg[TL_ERRSZ];
    int rc;
    snprintf(path, sizeof path, "%s.emit.attrs", at);
    if (is_null(n)) return TL_OK;
    if ((rc = tl_config_yaml_want_map(
             L, n, path, "a mapping of attribute names to templates")))
        return rc;
    size_t cnt = (size_t)(n->data.mapping.pairs.top -
                          n->data.mapping.pairs.start);
    r->attrs = tl_xcalloc(cnt ? cnt : 1, sizeof *r->attrs);
    txt->attrs = tl_xcalloc(cnt ? cnt : 1, sizeof *txt->attrs);
    snprintf(kpath, sizeof kpath, "%s: key", path);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *val = yaml_document_get_node(&L->doc, pr->value);
        char *key = NULL;
        if ((rc = tl_config_yaml_str(L, k, kpath, 0, &key))) return rc;
        /* Counted at once, so that tl_rule_clear frees it. */
        tl_rule_attr *a = &r->attrs[r->nattrs++];
        a->key = key;
        txt->nattrs = r->nattrs;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->attrs[j].key, key)) {
                yaml_node_t *first = yaml_document_get_node(
                    &L->doc, n->data.mapping.pairs.start[j].key);
                return fail_node(L, k,
                                 "duplicate key '%s' in %s (first at %zu:%zu)",
                                 key, path, first->start_mark.line + 1,
                                 first->start_mark.column + 1);
            }
        snprintf(vpath, sizeof vpath, "%s.%s", path, key);
        if (val->type != YAML_SCALAR_NODE || is_null(val))
            return fail_node(L, val, "%s: expected a template, got %s", vpath,
                             tl_config_yaml_describe(val, got, sizeof got));
        size_t off = 0;
        if (tl_template_compile(&a->value, scalar(val), scalar_len(val), scope,
                                &off, msg, sizeof msg) != TL_OK)
            return tl_config_yaml_fail_in(L, val, off, "%s: %s", vpath, msg);
        txt->attrs[i] = tl_xstrndup(scalar(val), scalar_len(val));
    }
    return TL_OK;
}

/* ---- rule version -------------------------------------------------------- */

static int mark_before(yaml_mark_t a, yaml_mark_t b)
{
    return a.line < b.line || (a.line == b.line && a.column < b.column);
}

/* Nodes walked for a rule's version: seen (by node index) and the nodes
 * written outside the text being walked (alias targets), each hashed as a
 * text of its own. */
typedef struct vwalk {
    unsigned char *seen;
    yaml_node_t **todo;
    size_t ntodo, cap;
} vwalk;

static void vwalk_push(vwalk *w, yaml_node_t *n)
{
    if (w->ntodo == w->cap) {
        w->cap = w->cap * 2 + 4;
        w->todo = tl_xrealloc(w->todo, w->cap * sizeof *w->todo);
    }
    w->todo[w->ntodo++] = n;
}

/*
 * Where node n's own text ends.  libyaml ends a block mapping or sequence
 * at the token that follows it, past the comments and blank lines before
 * the next rule; the rule's text ends with its last scalar or flow
 * collection instead.  A child that starts before n (an alias of a node
 * written elsewhere) is queued to be hashed on its own.  Called on a rule
 * the loader has accepted, so the nesting is shallow.
 */
static yaml_mark_t node_end(loader *L, vwalk *w, yaml_node_t *n)
{
    w->seen[n - L->doc.nodes.start] = 1;
    int block = (n->type == YAML_MAPPING_NODE &&
                 n->data.mapping.style != YAML_FLOW_MAPPING_STYLE) ||
                (n->type == YAML_SEQUENCE_NODE &&
                 n->data.sequence.style != YAML_FLOW_SEQUENCE_STYLE);
    if (!block) return n->end_mark;
    yaml_node_item_t *ids = NULL;
    size_t nids = 0;
    yaml_node_item_t pair_ids[2];
    yaml_mark_t end = n->start_mark;
    size_t count = n->type == YAML_MAPPING_NODE
                       ? (size_t)(n->data.mapping.pairs.top -
                                  n->data.mapping.pairs.start)
                       : seq_len(n);
    for (size_t i = 0; i < count; i++) {
        if (n->type == YAML_MAPPING_NODE) {
            pair_ids[0] = n->data.mapping.pairs.start[i].key;
            pair_ids[1] = n->data.mapping.pairs.start[i].value;
            ids = pair_ids;
            nids = 2;
        } else {
            ids = &n->data.sequence.items.start[i];
            nids = 1;
        }
        for (size_t j = 0; j < nids; j++) {
            yaml_node_t *c = yaml_document_get_node(&L->doc, ids[j]);
            if (!c || w->seen[c - L->doc.nodes.start]) continue;
            if (mark_before(c->start_mark, n->start_mark)) {
                w->seen[c - L->doc.nodes.start] = 1;
                vwalk_push(w, c);
                continue;
            }
            yaml_mark_t e = node_end(L, w, c);
            if (mark_before(end, e)) end = e;
        }
    }
    return end;
}

/*
 * rule_version: FNV-1a 64 of the rule's source text, from its start to the
 * end of its last value (trailing blanks and line breaks, comments after it
 * and the blank lines before the next rule do not count), followed by the
 * text of every node it reaches through an alias but that is written
 * elsewhere.  Editing a rule changes its version; editing another does not.
 */
static void rule_version(loader *L, yaml_node_t *n, char out[17])
{
    size_t nnodes = (size_t)(L->doc.nodes.top - L->doc.nodes.start);
    vwalk w = {.seen = tl_xcalloc(nnodes ? nnodes : 1, 1)};
    uint64_t h = TL_FNV_OFFSET;
    vwalk_push(&w, n);
    for (size_t i = 0; i < w.ntodo; i++) {
        yaml_node_t *x = w.todo[i];
        yaml_mark_t end = node_end(L, &w, x);
        size_t from, to;
        if (i) h = tl_fnv1a(h, "", 1);
        if (tl_config_yaml_mark_offset(L, x->start_mark, &from) != 0 ||
            tl_config_yaml_mark_offset(L, end, &to) != 0 || to < from) {
            /* Not expected: the marks come from this text. */
            from = to = 0;
        }
        while (to > from && (L->src[to - 1] == ' ' || L->src[to - 1] == '\t' ||
                             L->src[to - 1] == '\n' || L->src[to - 1] == '\r'))
            to--;
        h = tl_fnv1a(h, L->src + from, to - from);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    free(w.seen);
    free(w.todo);
}

/* ---- triggers ------------------------------------------------------------ */

/* The keys of a trigger's mapping; v[] below is indexed by K_*. */
static const char *const keys[] = {
    "name", "when", "if", "mode", "cooldown", "cap", "quiet_hours",
    "priority", "group", "holdout", "emit"};
enum {
    K_NAME, K_WHEN, K_IF, K_MODE, K_COOLDOWN, K_CAP, K_QUIET, K_PRIORITY,
    K_GROUP, K_HOLDOUT, K_EMIT, K__N
};

/* One trigger being read: where its parts go and what its expressions may
 * name (ev: the event's fields; nm: the features too). */
typedef struct trig {
    const char *at; /* "triggers[i]" */
    tl_rule *r;
    rule_text *txt;
    tl_expr_scope ev, nm;
    yaml_node_t *cap_channel; /* cap.channel, or NULL */
    yaml_node_t *tz;          /* quiet_hours.tz, or NULL */
} trig;

/* when, if, mode and cooldown: when the rule fires. */
static int trigger_when(loader *L, yaml_node_t *const *v, trig *t)
{
    tl_rule *r = t->r;
    char path[64];
    int rc;
    if (v[K_WHEN]) {
        snprintf(path, sizeof path, "%s.when", t->at);
        if ((rc = tl_config_yaml_expr(L, v[K_WHEN], path, &t->ev, TL_T_BOOL,
                                      &r->when, &t->txt->when)))
            return rc;
    }
    if (v[K_IF]) {
        snprintf(path, sizeof path, "%s.if", t->at);
        if ((rc = tl_config_yaml_expr(L, v[K_IF], path, &t->nm, TL_T_BOOL,
                                      &r->cond, &t->txt->cond)))
            return rc;
    }
    if (v[K_MODE] && (v[K_MODE]->type != YAML_SCALAR_NODE ||
                      tl_rule_mode_parse(scalar(v[K_MODE]), &r->mode) != 0))
        return tl_config_yaml_choice(L, v[K_MODE], t->at, "mode",
                                     "every, edge, once");
    if (v[K_COOLDOWN]) {
        snprintf(path, sizeof path, "%s.cooldown", t->at);
        if ((rc = tl_config_yaml_duration(L, v[K_COOLDOWN], path, 0, 0,
                                          &r->cooldown_ms)))
            return rc;
    }
    return TL_OK;
}

/* cap, quiet_hours, priority, group and holdout: what holds it back. */
static int trigger_limits(loader *L, yaml_node_t *const *v, trig *t)
{
    tl_rule *r = t->r;
    char path[64];
    int64_t x;
    int rc;
    if (v[K_CAP] && (rc = load_cap(L, v[K_CAP], t->at, r, &t->cap_channel)))
        return rc;
    if (v[K_QUIET] &&
        (rc = load_quiet(L, v[K_QUIET], t->at, r, t->txt, &t->nm, &t->tz)))
        return rc;
    if (v[K_PRIORITY]) {
        snprintf(path, sizeof path, "%s.priority", t->at);
        if ((rc = tl_config_yaml_int(L, v[K_PRIORITY], path, -PRIORITY_MAX,
                                     PRIORITY_MAX, &x)))
            return rc;
        r->priority = (int)x;
    }
    if (v[K_GROUP]) {
        snprintf(path, sizeof path, "%s.group", t->at);
        if ((rc = tl_config_yaml_str(L, v[K_GROUP], path, 0, &r->group)) ||
            (rc = tl_config_yaml_group(L, v[K_GROUP], path, r->group)))
            return rc;
    }
    if (v[K_HOLDOUT]) {
        snprintf(path, sizeof path, "%s.holdout", t->at);
        if ((rc = get_share(L, v[K_HOLDOUT], path, &r->holdout))) return rc;
    }
    return TL_OK;
}

/* emit: {channel, message, attrs}, required, with a message. */
static int trigger_emit(loader *L, yaml_node_t *n, yaml_node_t *emit, trig *t)
{
    static const char *const ekeys[] = {"channel", "message", "attrs"};
    yaml_node_t *e[3];
    tl_rule *r = t->r;
    char path[64], got[96], msg[TL_ERRSZ];
    int rc;
    if (!emit)
        return fail_node(L, n,
                         "%s: missing required key 'emit' (the trigger's "
                         "message and channel)",
                         t->at);
    snprintf(path, sizeof path, "%s.emit", t->at);
    if ((rc = tl_config_yaml_want_map(
             L, emit, path,
             "a mapping with message and optional channel, attrs")) ||
        (rc = tl_config_yaml_map(L, emit, path, ekeys, 3, e)))
        return rc;
    if (e[0]) {
        if ((rc = get_channel(L, e[0], path, &r->channel))) return rc;
        r->has_channel = 1;
    }
    if (!e[1])
        return fail_node(L, emit,
                         "%s: missing required key 'message' (the text sent, "
                         "with {{name}} placeholders)",
                         path);
    snprintf(path, sizeof path, "%s.emit.message", t->at);
    yaml_node_t *m = e[1];
    if (m->type != YAML_SCALAR_NODE || is_null(m) || !scalar_len(m))
        return fail_node(L, m, "%s: expected a non-empty message, got %s", path,
                         tl_config_yaml_describe(m, got, sizeof got));
    size_t off = 0;
    if (tl_template_compile(&r->message, scalar(m), scalar_len(m), &t->nm,
                            &off, msg, sizeof msg) != TL_OK)
        return tl_config_yaml_fail_in(L, m, off, "%s: %s", path, msg);
    t->txt->message = tl_xstrndup(scalar(m), scalar_len(m));
    if (e[2] && (rc = load_attrs(L, e[2], t->at, r, t->txt, &t->nm)))
        return rc;
    return TL_OK;
}

static int load_trigger(loader *L, yaml_node_t *n, size_t idx,
                        const tl_names *names)
{
    yaml_node_t *v[K__N];
    char at[32], msg[TL_ERRSZ];
    trig t = {.at = at, .r = &L->c->rules[idx],
              .txt = &L->c->text->rules[idx],
              .ev = TL_WHEN_SCOPE(names), .nm = TL_NAMES_SCOPE(names)};
    tl_rule *r = t.r;
    int rc;
    snprintf(at, sizeof at, "triggers[%zu]", idx);
    if ((rc = tl_config_yaml_want_map(
             L, n, at,
             "a mapping with name, emit and optional when, if, mode, "
             "cooldown, cap, quiet_hours, priority, group, holdout")) ||
        (rc = tl_config_yaml_map(L, n, at, keys, K__N, v)) ||
        (rc = tl_config_yaml_unique_name(L, n, v[K_NAME], at, 0, L->rname,
                                         idx, &r->name)) ||
        (rc = trigger_when(L, v, &t)) || (rc = trigger_limits(L, v, &t)) ||
        (rc = trigger_emit(L, n, v[K_EMIT], &t)))
        return rc;

    /* The cap counts the triggers of one channel: its own, or the one the
     * rule emits on (the event's channel would differ from event to
     * event). */
    if (r->has_cap && !t.cap_channel) {
        if (!r->has_channel)
            return fail_node(L, v[K_CAP],
                             "%s.cap: cap needs a channel (or emit.channel)",
                             at);
        r->cap.channel = r->channel;
    }

    rule_version(L, n, r->version);
    if (tl_rule_finish(r, msg, sizeof msg) != TL_OK) {
        /* An unknown zone in quiet_hours.tz: at the zone's name. */
        yaml_node_t *where = n;
        if (t.tz && r->quiet.tz_name &&
            (!strncmp(msg, "quiet_hours.tz", 14) ||
             strstr(msg, r->quiet.tz_name)))
            where = t.tz;
        return fail_node(L, where, "%s (%s): %s", at, r->name, msg);
    }
    return TL_OK;
}

int tl_config_triggers_load(loader *L, yaml_node_t *n)
{
    tl_config *c = L->c;
    char got[96];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_node(L, n, "triggers: expected a list of triggers, got %s",
                         tl_config_yaml_describe(n, got, sizeof got));
    size_t cnt = seq_len(n);
    L->triggers = n;
    c->rules = tl_xcalloc(cnt ? cnt : 1, sizeof *c->rules);
    c->text->rules = tl_xcalloc(cnt ? cnt : 1, sizeof *c->text->rules);
    L->rname = tl_xcalloc(cnt ? cnt : 1, sizeof *L->rname);
    tl_names names = {c->features, c->nfeatures};
    for (size_t i = 0; i < cnt; i++) {
        c->nrules = i + 1;
        int rc = load_trigger(L, seq_item(L, n, i), i, &names);
        if (rc) return rc;
    }
    return TL_OK;
}
