/*
 * config_env — ${NAME} substitution: every scalar value of the document (not
 * the keys) has its references to environment variables replaced before any
 * section reads it (the rules are in config.h).  Runs on the libyaml
 * document in place, so positions in messages stay those of the file, and
 * remembers which scalars had a reference (the summary masks such
 * kafka.properties values).
 */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common.h"

static int env_name_char(int ch, int first)
{
    return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (!first && ch >= '0' && ch <= '9');
}

/* Replaces scalar n's value by its expansion (see config.h); *used set when
 * it had a reference.  Errors point at the '$' of the offending reference. */
static int expand_scalar(loader *L, yaml_node_t *n, unsigned char *used)
{
    const char *s = scalar(n);
    size_t len = scalar_len(n);
    if (!memchr(s, '$', len)) return TL_OK;
    size_t cap = len + 64, o = 0;
    char *buf = tl_xmalloc(cap);
    for (size_t i = 0; i < len;) {
        const char *piece = s + i;
        size_t plen = 1, adv = 1;
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            piece = "${";
            plen = 2;
            adv = 3;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            size_t j = i + 2;
            while (j < len && env_name_char((unsigned char)s[j], j == i + 2))
                j++;
            if (j == i + 2 || j >= len || s[j] != '}') {
                free(buf);
                return tl_config_yaml_fail_in(
                    L, n, i,
                    "expected ${NAME} (NAME of letters, digits and _, not "
                    "starting with a digit) for an environment variable; "
                    "write $${ for a literal ${");
            }
            char name[256];
            size_t nl =
                j - i - 2 < sizeof name - 1 ? j - i - 2 : sizeof name - 1;
            memcpy(name, s + i + 2, nl);
            name[nl] = '\0';
            piece = getenv(name);
            if (!piece) {
                free(buf);
                return tl_config_yaml_fail_in(
                    L, n, i,
                    "environment variable %s is not set (referenced as "
                    "${%s}; set it, e.g. in the EnvironmentFile, or write "
                    "$${ for a literal ${)",
                    name, name);
            }
            plen = strlen(piece);
            adv = j + 1 - i;
            *used = 1;
        }
        if (o + plen + 1 > cap) {
            while (o + plen + 1 > cap) cap *= 2;
            buf = tl_xrealloc(buf, cap);
        }
        memcpy(buf + o, piece, plen);
        o += plen;
        i += adv;
    }
    buf[o] = '\0';
    /* libyaml frees values with free() (yaml_free) in yaml_document_delete. */
    free(n->data.scalar.value);
    n->data.scalar.value = (yaml_char_t *)buf;
    n->data.scalar.length = o;
    return TL_OK;
}

int tl_config_env_expand(loader *L)
{
    size_t nn = (size_t)(L->doc.nodes.top - L->doc.nodes.start);
    unsigned char *is_key = tl_xcalloc(nn + 1, 1);
    for (size_t i = 0; i < nn; i++) {
        yaml_node_t *m = &L->doc.nodes.start[i];
        if (m->type != YAML_MAPPING_NODE) continue;
        for (yaml_node_pair_t *pr = m->data.mapping.pairs.start;
             pr < m->data.mapping.pairs.top; pr++)
            if (pr->key >= 1 && (size_t)pr->key <= nn) is_key[pr->key] = 1;
    }
    int rc = TL_OK;
    L->expanded = tl_xcalloc(nn + 1, 1);
    for (size_t i = 0; rc == TL_OK && i < nn; i++)
        if (L->doc.nodes.start[i].type == YAML_SCALAR_NODE && !is_key[i + 1])
            rc = expand_scalar(L, &L->doc.nodes.start[i],
                               &L->expanded[i + 1]);
    free(is_key);
    return rc;
}

int tl_config_env_expanded(const loader *L, const yaml_node_t *n)
{
    const yaml_node_t *first = L->doc.nodes.start;
    if (!L->expanded || n < first || n >= L->doc.nodes.top) return 0;
    return L->expanded[n - first + 1];
}
