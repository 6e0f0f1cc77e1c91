/*
 * rule — trigger rules: event filter (`when`), condition on features and event
 * (`if`), mode, cooldown, and the emitted message template.  Also the name
 * scope that rules and templates see (event fields + features).  No I/O.
 *
 * Like features, each rule owns a fixed slice of the customer's state block
 * (its cooldown clock and edge/once memory), stored in Redis field
 * "_r:<name>".
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
/* A tl_expr_scope over a tl_names (ud points to it). */
#define TL_NAMES_SCOPE(names_ptr)                                              \
    ((tl_expr_scope){.resolve = tl_names_resolve, .ud = (void *)(names_ptr)})

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

typedef struct tl_rule {
    char *name;
    tl_expr *when;        /* NULL: every event */
    tl_expr *cond;        /* `if`; NULL: always true */
    tl_rule_mode mode;
    int64_t cooldown_ms;  /* 0: none; measured in event time */
    int has_channel;      /* emit.channel given; else the event's channel */
    tl_channel channel;
    tl_template message;
    uint32_t *explain;    /* feature indexes the `if` reads, source order */
    size_t nexplain;
    size_t offset, size;  /* slice of the state block */
} tl_rule;

/* Derives explain list and slice size after the caller set the fields. */
int tl_rule_finish(tl_rule *r, char *err, size_t errsz);
size_t tl_rules_layout(tl_rule *rs, size_t n, size_t base);
void tl_rule_reset(const tl_rule *r, unsigned char *block);

/* Evaluates the rule for an event, after the features were applied.
 * Returns 1 when the rule fires (its slice then records it), else 0. */
int tl_rule_eval(const tl_rule *r, unsigned char *block, const tl_event *ev,
                 tl_expr_fetch fetch, void *ud);

/* Internal state text for field "_r:<name>" (round-trips exactly). */
size_t tl_rule_save_size(const tl_rule *r);
size_t tl_rule_save(const tl_rule *r, const unsigned char *block, char *buf);
int tl_rule_load(const tl_rule *r, unsigned char *block, const char *text,
                 size_t len, char *err, size_t errsz);

void tl_rule_clear(tl_rule *r);

#endif
