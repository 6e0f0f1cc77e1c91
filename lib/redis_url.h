/*
 * redis_url — parsing of the Redis URLs that redis.url / TAILOR_REDIS_URL
 * accept, for the store (which connects to what they name) and for config
 * (which checks them at load time).
 *
 * URLs: redis://[[user]:password@]host[:port][/db]   (port 6379, db 0)
 *       unix://[[user]:password@]/path/to/redis.sock[?db=N]
 *       redis-cluster://[[user]:password@]host[:port][,host[:port]...]
 *
 * A password may be percent-escaped (%XX, not %00).  Error messages never
 * show it: the password is replaced by *** so that they can go to a log.
 *
 * Ownership: a parsed tl_redis_url owns its strings; tl_redis_url_clear
 * frees them (and may be called again on the cleared value).
 */
#ifndef TL_REDIS_URL_H
#define TL_REDIS_URL_H

#include <stddef.h>

#include "common.h"

typedef struct tl_redis_url {
    char *host;      /* NULL for unix sockets */
    int port;
    char *unix_path; /* NULL for TCP */
    int db;
    char *user;      /* NULL: no ACL user (AUTH password only) */
    char *password;  /* NULL: no AUTH */
    int cluster;     /* redis-cluster://: host and port are the first seed */
    size_t nseeds;   /* cluster: every host:port of the URL */
    char **seed_hosts;
    int *seed_ports;
} tl_redis_url;

/* Parses url into *out (malloc'd strings; free with tl_redis_url_clear).
 * Error message names the URL part that is wrong and shows the expected form. */
int tl_redis_url_parse(const char *url, tl_redis_url *out, char *err,
                       size_t errsz);
void tl_redis_url_clear(tl_redis_url *u);

#endif
