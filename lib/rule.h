/*
 * rule — trigger rules: event filter (`when`), condition on features and event
 * (`if`), mode, cooldown, frequency cap, quiet hours, priority within a group,
 * holdout, and the emitted message and attribute templates.  Also the name
 * scope that rules and templates see (event fields + features), and the rule
 * set that evaluates all rules of one event together.  No I/O.
 *
 * Like features, each rule owns a fixed slice of the customer's state block
 * (its cooldown clock and edge/once memory), stored in Redis field
 * "_r:<name>"; the rule set adds one send ledger per capped channel (the
 * times of the customer's latest triggers on it), stored in "_c:<channel>".
 *
 * Ownership: tl_rule owns its strings, expressions and template
 * (tl_rule_clear).
 */
#ifndef TL_RULE_H
#define TL_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "expr.h"
#include "feature.h"

/*
 * Names visible to rules and templates: the event fields of event.h (also
 * reachable as event.<field>, e.g. event.item, event.attrs["k"]) and every
 * feature by name.  Feature variables are TL_EVENT_VAR_LIMIT + index.
 */
typedef struct tl_names {
    const tl_feature *features;
    size_t nfeatures;
} tl_names;
int tl_names_resolve(void *ud /* const tl_names * */, const char *name,
                     const char *key, uint32_t *var, tl_type *type);
/* tl_expr_scope explainers of a name resolve does not know: "unknown
 * name 'x'" with a close name if there is one ("did you mean 'visits'?");
 * _when for the event-only scope of `when`, which says so when the name is
 * a feature.  ud points to the tl_names. */
int tl_names_explain(void *ud, const char *name, char *msg, size_t size);
int tl_names_explain_when(void *ud, const char *name, char *msg, size_t size);
/* A tl_expr_scope over a tl_names (ud points to it). */
#define TL_NAMES_SCOPE(names_ptr)                                              \
    ((tl_expr_scope){.resolve = tl_names_resolve, .ud = (void *)(names_ptr),  \
                     .explain = tl_names_explain})
/* The scope of `when`: the event's fields only (ud: the tl_names, for the
 * features' names in messages). */
#define TL_WHEN_SCOPE(names_ptr)                                               \
    ((tl_expr_scope){.resolve = tl_event_resolve, .ud = (void *)(names_ptr),  \
                     .explain = tl_names_explain_when})

/* Evaluation context matching tl_names: the event and the customer's block,
 * read as of the event's ts. */
typedef struct tl_eval_ctx {
    const tl_event *ev;
    const tl_feature *features;
    const unsigned char *block;
} tl_eval_ctx;
void tl_eval_fetch(void *ud /* tl_eval_ctx * */, uint32_t var, const char *key,
                   size_t keylen, tl_value *out);

/* "Hello {{name}}, the usual {{item}}?": literal text and expressions. */
typedef struct tl_template_part {
    char *lit;      /* literal text before the expression (may be "") */
    size_t litlen;
    tl_expr *expr;  /* NULL for the trailing literal */
} tl_template_part;
typedef struct tl_template {
    tl_template_part *parts;
    size_t nparts;
} tl_template;

/* Compiles a template; on error *err_offset is the byte offset in src. */
int tl_template_compile(tl_template *t, const char *src, size_t len,
                        const tl_expr_scope *scope, size_t *err_offset,
                        char *err, size_t errsz);
/* Renders into buf like snprintf (returns the full length). Null values
 * render as "". */
size_t tl_template_render(const tl_template *t, tl_expr_fetch fetch, void *ud,
                          char *buf, size_t size);
void tl_template_clear(tl_template *t);

typedef enum tl_rule_mode {
    TL_MODE_EVERY = 0, /* fires whenever `when` and `if` hold */
    TL_MODE_EDGE,      /* fires when `if` turns from false to true */
    TL_MODE_ONCE,      /* fires at most once per customer key lifetime */
} tl_rule_mode;
const char *tl_rule_mode_name(tl_rule_mode m);
int tl_rule_mode_parse(const char *s, tl_rule_mode *out);

/* cap: {max: 3, per: 7d, channel: email}: at most `max` triggers per
 * customer on `channel` within `per` (event time), counting the triggers of
 * every rule on that channel.  The check reads the ledger of cap.channel,
 * while a firing is recorded in the ledger of the trigger's own channel: a
 * rule capping X but emitting on Y is checked against X's sends and counts
 * toward Y's.  The caller (config loader) fills channel, defaulting it to
 * emit.channel: rule.c cannot tell an omitted channel from web (0). */
typedef struct tl_cap {
    uint32_t max;         /* 1..1000 */
    int64_t per_ms;       /* > 0 */
    tl_channel channel;   /* default: the rule's emit.channel (required then) */
} tl_cap;

/* quiet_hours: {from: "22:00", to: "08:00", tz: "Europe/Madrid"}: no trigger
 * while the event's local time is in [from, to) (wrapping midnight when
 * from > to; from == to is an empty span, never quiet).  tz is a zone name
 * (loaded by tl_rule_finish: unknown is a config error), or an expression
 * yielding one per event (e.g. attrs["tz"]; the rule set caches up to 64
 * zones it names); an unknown or null zone at run time means UTC, and so
 * does no tz at all. */
typedef struct tl_quiet {
    int from_min, to_min; /* minutes after local midnight, 0..1439 */
    char *tz_name;        /* literal zone (owned), or NULL */
    tl_expr *tz_expr;     /* or a string expression (owned), or NULL */
} tl_quiet;

/* emit.attrs: key -> template */
typedef struct tl_rule_attr {
    char *key;
    tl_template value;
} tl_rule_attr;

typedef struct tl_rule {
    char *name;
    tl_expr *when;        /* NULL: every event */
    tl_expr *cond;        /* `if`; NULL: always true */
    tl_rule_mode mode;
    int64_t cooldown_ms;  /* 0: none; measured in event time */
    int has_channel;      /* emit.channel given; else the event's channel */
    tl_channel channel;
    tl_template message;
    tl_rule_attr *attrs;  /* emit.attrs, in file order */
    size_t nattrs;
    int has_cap;
    tl_cap cap;
    int has_quiet;
    tl_quiet quiet;
    int priority;         /* higher wins within a group; default 0 */
    char *group;          /* NULL: in no group */
    double holdout;       /* share 0..1 put in the control group; 0: none */
    char version[17];     /* rule_version: 16 hex digits of a hash of the
                           * rule's source text (set by the config loader) */
    uint32_t *explain;    /* feature indexes the `if` reads, source order */
    size_t nexplain;
    size_t offset, size;  /* slice of the state block */
    /* private to rule.c: the zone of a literal quiet_hours.tz */
    void *quiet_zone;
} tl_rule;

/* Derives explain list and slice size after the caller set the fields;
 * checks cap (max 1..1000, per > 0), quiet hours (times, a string tz
 * expression, not both a name and an expression), holdout (0..1), and
 * loads the literal quiet-hours zone.  TL_OK or TL_ERR_CONFIG. */
int tl_rule_finish(tl_rule *r, char *err, size_t errsz);
size_t tl_rules_layout(tl_rule *rs, size_t n, size_t base);
void tl_rule_reset(const tl_rule *r, unsigned char *block);

/* Evaluates one rule alone (mode and cooldown only, no cap, quiet hours,
 * group or holdout), after the features were applied.  Returns 1 when the
 * rule fires (its slice then records it), else 0.  For tests and tools; the
 * pipeline uses tl_ruleset_eval. */
int tl_rule_eval(const tl_rule *r, unsigned char *block, const tl_event *ev,
                 tl_expr_fetch fetch, void *ud);

/* Why a rule whose `when`, `if` and mode held did not fire. */
typedef enum tl_suppress {
    TL_SUP_NONE = 0,
    TL_SUP_COOLDOWN,
    TL_SUP_QUIET_HOURS,
    TL_SUP_CAP,
    TL_SUP_GROUP,
    TL_SUP__COUNT
} tl_suppress;
/* "none", "cooldown", "quiet_hours", "cap", "group" */
const char *tl_suppress_name(tl_suppress s);

/*
 * All rules of a config, evaluated together per event:
 *   1. every rule whose `when` holds evaluates `if` and its mode (every,
 *      edge, once): those that would fire are candidates;
 *   2. a candidate in its cooldown, or in quiet hours, is suppressed;
 *   3. the rest, by priority (highest first; ties in config order): a rule
 *      whose group already fired on this event is suppressed (group); one
 *      whose channel's cap is reached is suppressed (cap); otherwise it
 *      fires: cooldown clock, once/edge memory and the channel's ledger are
 *      updated, and it is decided whether it is a holdout.
 * A suppressed rule changes none of its state (an edge or once rule may
 * fire on a later event).  Holdout triggers fire like the others (they
 * count for cooldowns and caps, so control and treatment customers live the
 * same trajectory) and are marked: the campaign tool must not act on them.
 * Holdout membership: FNV-1a 64 of customer_id "\0" rule name, as a fraction
 * of 2^64, below the rule's share.
 */
typedef struct tl_ruleset {
    tl_rule *rules;       /* borrowed from the config */
    size_t nrules;
    uint32_t depth[TL_CH__COUNT];    /* ledger entries per channel (0: none) */
    size_t ledger_off[TL_CH__COUNT]; /* offset of each channel's ledger */
    size_t end;                      /* end offset of rules + ledgers */
    void *scratch;                   /* private: candidate buffers */
} tl_ruleset;

/* Lays out the rules' slices and the ledgers from offset base (8-aligned;
 * it calls tl_rules_layout), computes the priority order and groups, and
 * allocates the evaluation buffers; rs->end is the end.  TL_OK, or
 * TL_ERR_CONFIG with a message (a cap with bad values, should a rule skip
 * tl_rule_finish).  The rules must outlive the set. */
int tl_ruleset_init(tl_ruleset *rs, tl_rule *rules, size_t n, size_t base,
                    char *err, size_t errsz);
void tl_ruleset_clear(tl_ruleset *rs);

typedef struct tl_firing {
    const tl_rule *rule;
    tl_channel channel;   /* the trigger's channel */
    int holdout;
} tl_firing;

/*
 * Evaluates every rule for one event (after the features were applied to
 * the block).  Writes the rules that fire to out (room for nrules), in
 * priority order, and returns their number; why[i] (room for nrules, by rule
 * index) says, for each rule, TL_SUP_NONE or why a candidate was
 * suppressed.  Allocates nothing, except once per zone name that a
 * quiet_hours.tz expression yields for the first time (the set's zone
 * cache; hence also one thread at a time per set).
 */
size_t tl_ruleset_eval(const tl_ruleset *rs, unsigned char *block,
                       const tl_event *ev, tl_expr_fetch fetch, void *ud,
                       tl_firing *out, tl_suppress *why);

/* Holdout membership of (customer, rule), as documented above. */
int tl_rule_in_holdout(const tl_rule *r, const char *customer_id,
                       size_t idlen);

/* Ledgers in Redis: field "_c:<channel>" for each capped channel. */
size_t tl_ruleset_nledgers(const tl_ruleset *rs);
/* The i-th ledger's channel. */
tl_channel tl_ruleset_ledger_channel(const tl_ruleset *rs, size_t i);
/* 1 when the ledger holds any send (else no field is written). */
int tl_ruleset_ledger_used(const tl_ruleset *rs, size_t i,
                           const unsigned char *block);
size_t tl_ruleset_ledger_save_size(const tl_ruleset *rs, size_t i);
size_t tl_ruleset_ledger_save(const tl_ruleset *rs, size_t i,
                              const unsigned char *block, char *buf);
/* Text "t1,t2,..." (epoch ms, newest first; exact round trip).  A channel
 * no rule caps is ignored (TL_OK); of more entries than the ledger holds
 * (a cap lowered since), the newest are kept; malformed text resets the
 * ledger and returns TL_ERR_DECODE with a message. */
int tl_ruleset_ledger_load(const tl_ruleset *rs, tl_channel ch,
                           unsigned char *block, const char *text, size_t len,
                           char *err, size_t errsz);

/* Internal state text for field "_r:<name>" (round-trips exactly). */
size_t tl_rule_save_size(const tl_rule *r);
size_t tl_rule_save(const tl_rule *r, const unsigned char *block, char *buf);
int tl_rule_load(const tl_rule *r, unsigned char *block, const char *text,
                 size_t len, char *err, size_t errsz);

void tl_rule_clear(tl_rule *r);

#endif
