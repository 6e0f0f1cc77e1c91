#include "cache.h"

#include <string.h>

/* Open addressing (linear probing) + an LRU list. */
struct tl_cache {
    const tl_layout *layout;
    size_t max, count, cap; /* cap: power of two */
    tl_vec **slots;
    tl_vec *head, *tail;    /* LRU: head most recent */
};

static uint64_t hash_id(const char *id, size_t len)
{
    return tl_fnv1a(TL_FNV_OFFSET, id, len);
}

tl_cache *tl_cache_new(const tl_layout *l, size_t max)
{
    tl_cache *c = tl_xcalloc(1, sizeof *c);
    c->layout = l;
    c->max = max ? max : 1;
    c->cap = 64;
    while (c->cap < c->max * 2 && c->cap < ((size_t)1 << 30)) c->cap <<= 1;
    c->slots = tl_xcalloc(c->cap, sizeof *c->slots);
    return c;
}

static void lru_unlink(tl_cache *c, tl_vec *v)
{
    if (v->prev) v->prev->next = v->next; else c->head = v->next;
    if (v->next) v->next->prev = v->prev; else c->tail = v->prev;
    v->prev = v->next = NULL;
}

static void lru_push(tl_cache *c, tl_vec *v)
{
    v->prev = NULL;
    v->next = c->head;
    if (c->head) c->head->prev = v;
    c->head = v;
    if (!c->tail) c->tail = v;
}

static void grow(tl_cache *c)
{
    size_t ncap = c->cap * 2;
    tl_vec **ns = tl_xcalloc(ncap, sizeof *ns);
    for (size_t i = 0; i < c->cap; i++) {
        tl_vec *v = c->slots[i];
        if (!v) continue;
        size_t j = v->hash & (ncap - 1);
        while (ns[j]) j = (j + 1) & (ncap - 1);
        ns[j] = v;
    }
    free(c->slots);
    c->slots = ns;
    c->cap = ncap;
}

static size_t find_slot(const tl_cache *c, const char *id, size_t len,
                        uint64_t h)
{
    size_t i = h & (c->cap - 1);
    for (;;) {
        tl_vec *v = c->slots[i];
        if (!v || (v->hash == h && v->idlen == len &&
                   memcmp(v->customer_id, id, len) == 0))
            return i;
        i = (i + 1) & (c->cap - 1);
    }
}

tl_vec *tl_cache_get(tl_cache *c, const char *id, size_t idlen)
{
    uint64_t h = hash_id(id, idlen);
    tl_vec *v = c->slots[find_slot(c, id, idlen, h)];
    if (v && v != c->head) {
        lru_unlink(c, v);
        lru_push(c, v);
    }
    return v;
}

tl_vec *tl_cache_put(tl_cache *c, const char *id, size_t idlen)
{
    if ((c->count + 1) * 2 > c->cap) grow(c);
    uint64_t h = hash_id(id, idlen);
    size_t i = find_slot(c, id, idlen, h);
    TL_ASSERT(!c->slots[i]);
    tl_vec *v = tl_xcalloc(1, sizeof *v);
    v->customer_id = tl_xstrndup(id, idlen);
    v->idlen = idlen;
    v->hash = h;
    v->block = tl_xcalloc(1, c->layout->block_size);
    c->slots[i] = v;
    c->count++;
    lru_push(c, v);
    return v;
}

void tl_cache_remove(tl_cache *c, tl_vec *v)
{
    size_t i = find_slot(c, v->customer_id, v->idlen, v->hash);
    TL_ASSERT(c->slots[i] == v);
    /* Backward-shift deletion keeps probe chains intact without tombstones:
     * entries after the hole move back unless their home slot lies
     * cyclically in (hole, j]. */
    size_t mask = c->cap - 1, j = i;
    c->slots[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        tl_vec *w = c->slots[j];
        if (!w) break;
        size_t home = w->hash & mask;
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        c->slots[i] = w;
        c->slots[j] = NULL;
        i = j;
    }
    c->count--;
    lru_unlink(c, v);
    tl_vec_free(v);
}

void tl_cache_trim(tl_cache *c)
{
    tl_vec *v = c->tail;
    while (c->count > c->max && v) {
        tl_vec *prev = v->prev;
        if (!v->dirty) tl_cache_remove(c, v);
        v = prev;
    }
}

void tl_cache_drop_if(tl_cache *c, int (*pred)(void *ud, const tl_vec *v),
                      void *ud)
{
    for (tl_vec *v = c->head, *next; v; v = next) {
        next = v->next;
        if (pred(ud, v)) tl_cache_remove(c, v);
    }
}

void tl_cache_clear(tl_cache *c)
{
    while (c->head) tl_cache_remove(c, c->head);
}

size_t tl_cache_size(const tl_cache *c) { return c->count; }

void tl_cache_free(tl_cache *c)
{
    if (!c) return;
    tl_cache_clear(c);
    free(c->slots);
    free(c);
}
