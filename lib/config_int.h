/*
 * config_int — what the files of the configuration loader share; private to
 * lib/config*.c (the public interface is config.h).
 *
 *   config.c           tl_config_load/free, the top-level sections (kafka,
 *                      redis, events, state, daemon, log, http), durations
 *   config_yaml.c      reading the libyaml document: node accessors, typed
 *                      values, messages at FILE:LINE:COL, and the scalar
 *                      re-reader that maps an offset inside a decoded
 *                      scalar back to the file
 *   config_env.c       ${NAME} substitution in scalar values
 *   config_features.c  the features section
 *   config_triggers.c  the triggers section (and each rule's version)
 *   config_reload.c    what a reload may change (tl_config_reloadable)
 *   config_print.c     tl_config_print_summary
 *
 * Ownership: a loader lives on the stack of config.c's load() for one file;
 * it borrows the text and owns the document and the arrays below, which
 * load() frees whatever happened.  Everything reached through L->c belongs
 * to the config being built (tl_config_free clears a half-built one).
 */
#ifndef TL_CONFIG_INT_H
#define TL_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>

#include "common.h"
#include "config.h"

/* tl_expr keeps no source text, so the summary needs its own copy. */
typedef struct feat_text {
    char *where, *field;
} feat_text;
typedef struct rule_text {
    char *when, *cond, *message;
    char *tz;      /* quiet_hours.tz when it is an expression */
    char **attrs;  /* emit.attrs templates, parallel to tl_rule.attrs */
    size_t nattrs;
} rule_text;
struct tl_config_text {
    feat_text *features; /* parallel to tl_config.features */
    rule_text *rules;    /* parallel to tl_config.rules */
};

typedef struct loader {
    const char *name;   /* file name for messages */
    const char *src;    /* raw text, for positions inside scalars */
    size_t srclen;
    size_t *lines;      /* raw offset of the start of each line of src */
    size_t nlines;
    const char *dir;    /* prefix for relative paths: "" or "dir/" */
    yaml_document_t doc;
    tl_config *c;
    yaml_node_t **fname; /* name nodes of features, for duplicates */
    yaml_node_t **fnode; /* mappings of features, for tl_feature_finish */
    yaml_node_t **fof;   /* `of` values of features, or NULL */
    yaml_node_t **rname; /* name nodes of triggers */
    yaml_node_t *triggers; /* the triggers list, for tl_ruleset_init errors */
    unsigned char *expanded; /* by node id: the scalar had a ${NAME} */
    char *err;
    size_t errsz;
} loader;

/* ---- nodes (config_yaml.c) ----------------------------------------------- */

static inline const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static inline size_t scalar_len(const yaml_node_t *n)
{
    return n->data.scalar.length;
}

static inline size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static inline yaml_node_t *seq_item(loader *L, const yaml_node_t *n, size_t i)
{
    return yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
}

/* A plain scalar that YAML reads as null: nothing at all, ~ or null. */
static inline int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* "FILE:LINE:COL: message" into L->err; returns TL_ERR_CONFIG.  Control
 * characters in the message show as '?'. */
int tl_config_yaml_fail_at(loader *L, size_t line, size_t col,
                           const char *fmt, ...) TL_PRINTF(4, 5);
#define fail_mark(L, m, ...)                                                   \
    tl_config_yaml_fail_at(L, (m).line + 1, (m).column + 1, __VA_ARGS__)
#define fail_node(L, n, ...) fail_mark(L, (n)->start_mark, __VA_ARGS__)

/* What the user wrote, for "got ..." in messages: the value quoted (short
 * and printable), or the kind of node.  buf: 96 bytes will do. */
const char *tl_config_yaml_describe(const yaml_node_t *n, char *buf,
                                    size_t size);

/* ---- positions in the raw text (config_yaml.c) --------------------------- */

/* Fills L->lines (L->src must be set); load() frees it. */
void tl_config_yaml_index_lines(loader *L);
/* Raw byte offset of a libyaml mark; -1 if the mark is not in the text. */
int tl_config_yaml_mark_offset(const loader *L, yaml_mark_t m, size_t *out);
/* 1-based line and column of raw byte offset `off`. */
void tl_config_yaml_offset_pos(const loader *L, size_t off, size_t *line,
                               size_t *col);
/* 1-based file position of byte `off` of scalar n's decoded value. */
void tl_config_yaml_scalar_pos(const loader *L, const yaml_node_t *n,
                               size_t off, size_t *line, size_t *col);
/* tl_config_yaml_fail_at at byte `off` of scalar n's decoded value (where
 * an expression or template compiler or ${NAME} found the problem). */
int tl_config_yaml_fail_in(loader *L, const yaml_node_t *n, size_t off,
                           const char *fmt, ...) TL_PRINTF(4, 5);

/* ---- typed values (config_yaml.c) --------------------------------------- */

/* Each reads node n for the setting named `path` in messages, and returns
 * TL_OK or TL_ERR_CONFIG with the message in L->err. */

/* A string (a copy replaces *out). */
int tl_config_yaml_str(loader *L, const yaml_node_t *n, const char *path,
                       int allow_empty, char **out);
int tl_config_yaml_int(loader *L, const yaml_node_t *n, const char *path,
                       int64_t min, int64_t max, int64_t *out);
/* positive: above 0; max: upper bound or 0 for none. */
int tl_config_yaml_duration(loader *L, const yaml_node_t *n, const char *path,
                            int positive, int64_t max, int64_t *out);
/* Mapping `map` against the allowed keys (unknown and duplicate keys are
 * errors): vals[i] the value of keys[i] or NULL, kout[i] (kout may be NULL)
 * its key node.  `where` names the mapping; NULL for the top level. */
int tl_config_yaml_map_keys(loader *L, yaml_node_t *map, const char *where,
                            const char *const *keys, size_t nkeys,
                            yaml_node_t **vals, yaml_node_t **kout);
int tl_config_yaml_map(loader *L, yaml_node_t *map, const char *where,
                       const char *const *keys, size_t nkeys,
                       yaml_node_t **vals);
/* n must be a mapping ("PATH: expected WHAT, got ..."). */
int tl_config_yaml_want_map(loader *L, yaml_node_t *n, const char *path,
                            const char *what);
/* The error for a value outside a fixed set (always TL_ERR_CONFIG). */
int tl_config_yaml_choice(loader *L, const yaml_node_t *n, const char *at,
                          const char *key, const char *list);
/* Feature and trigger names: [a-z][a-z0-9_]*, at most 64 characters; a
 * feature's name may not be a word of the expression language or an event
 * field. */
int tl_config_yaml_name(loader *L, const yaml_node_t *n, const char *path,
                        const char *s, int is_feature);
/* Group names (triggers' group): [a-z_][a-z0-9_]*, at most 64 characters. */
int tl_config_yaml_group(loader *L, const yaml_node_t *n, const char *path,
                         const char *s);
/* The name of list item n (features[i] or triggers[i], `at`): required, a
 * valid name, not one of the earlier items' names, whose nodes are
 * seen[0..idx); seen[idx] gets this one.  *out gets the name. */
int tl_config_yaml_unique_name(loader *L, yaml_node_t *n, yaml_node_t *name,
                               const char *at, int is_feature,
                               yaml_node_t **seen, size_t idx, char **out);
/* Compiles the expression in scalar n into *out and its text into *text;
 * errors point inside the scalar. */
int tl_config_yaml_expr(loader *L, const yaml_node_t *n, const char *path,
                        const tl_expr_scope *scope, tl_type want,
                        tl_expr **out, char **text);

/* ---- the rest of the loader ---------------------------------------------- */

/* config_env.c: ${NAME} in every scalar that is not a mapping key. */
int tl_config_env_expand(loader *L);
/* Whether n's value had a ${NAME} reference (the environment may hold a
 * secret there, whatever the key says). */
int tl_config_env_expanded(const loader *L, const yaml_node_t *n);
/* config_features.c, config_triggers.c: the sections (the triggers after
 * the features, which they may name). */
int tl_config_features_load(loader *L, yaml_node_t *n);
int tl_config_triggers_load(loader *L, yaml_node_t *n);

/* config.c: durations as written in the file ("30d", "500ms"; see
 * tl_parse_duration).  s need not end in NUL; 0 ok, -1 syntax, -2 too
 * large. */
int tl_config_duration_parse(const char *s, size_t len, int64_t *ms);
/* Shortest exact spelling of a duration ("30d", "100ms", "0"), in buf. */
const char *tl_config_duration_fmt(int64_t ms, char *buf, size_t size);

#endif
