/*
 * httpc — a minimal HTTP/1.1 client for tailorctl talking to tailord's own
 * endpoint on loopback: one request per connection (Connection: close),
 * http:// only (no TLS: the endpoint listens on 127.0.0.1 by default; put
 * a TLS proxy in front for anything else), optional bearer token, bounded
 * by a timeout for connect and for each read and write.
 *
 * Ownership: *body is malloc'd (NUL-terminated), the caller frees it.
 */
#ifndef TL_HTTPC_H
#define TL_HTTPC_H

#include <stddef.h>

#include "common.h"

/*
 * Sends `method` to url (http://HOST[:PORT][/PATH], port 80 by default)
 * with the token as "Authorization: Bearer TOKEN" when not NULL, and an
 * empty body.  TL_OK with *status (the HTTP status code) and *body (the
 * response body, chunked transfer decoded) whatever the status; TL_ERR_IO
 * (cannot connect, timeout, malformed response) or TL_ERR_CONFIG (bad URL)
 * with a message.  The token never appears in a message.
 */
int tl_http_request(const char *method, const char *url, const char *token,
                    int timeout_ms, int *status, char **body, char *err,
                    size_t errsz);

#endif
