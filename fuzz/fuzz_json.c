/*
 * fuzz_json — the JSON event decoder on arbitrary bytes (libFuzzer).
 *
 * Each input is one Kafka message value (a JSON line, not NUL-terminated),
 * decoded by a TL_FMT_JSON decoder (tl_event_decode, i.e.
 * tl_event_from_json).  An accepted event must satisfy event.h's invariants,
 * and it must survive what `tailorctl produce` does with it: encoding to
 * Avro with the built-in schema and decoding that gives the same event.
 * The decoders and the encoder are created once and reused; the arena is
 * new for every input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "event.h"
#include "fuzz_common.h"

static tl_event_decoder *dec_json, *dec_avro;
static tl_event_encoder *enc;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void cleanup(void)
{
    tl_event_decoder_free(dec_json);
    tl_event_decoder_free(dec_avro);
    tl_event_encoder_free(enc);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[TL_ERRSZ];
    (void)argc;
    (void)argv;
    dec_json = tl_event_decoder_new(TL_FMT_JSON, NULL, NULL, err, sizeof err);
    dec_avro = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err);
    enc = tl_event_encoder_new(NULL, err, sizeof err);
    if (!dec_json || !dec_avro || !enc) {
        fprintf(stderr, "fuzz_json: setup: %s\n", err);
        abort();
    }
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[TL_ERRSZ];
    tl_arena arena;
    tl_event ev, again;
    tl_arena_init(&arena, 4096);

    err[0] = '\0';
    tl_reject r = tl_event_decode(dec_json, data, size, &arena, &ev, err,
                                  sizeof err);
    FUZZ_CHECK(fuzz_decode_reason_ok(r));
    if (r != TL_REJECT_NONE) {
        FUZZ_CHECK(err[0] != '\0');
    } else {
        fuzz_check_event(&ev);
        const void *out;
        size_t outlen;
        int rc = tl_event_encode(enc, &ev, &out, &outlen, err, sizeof err);
        if (rc) fprintf(stderr, "fuzz_json: encoding failed: %s\n", err);
        FUZZ_CHECK(rc == TL_OK);
        r = tl_event_decode(dec_avro, out, outlen, &arena, &again, err,
                            sizeof err);
        if (r) fprintf(stderr, "fuzz_json: Avro decoding failed: %s\n", err);
        FUZZ_CHECK(r == TL_REJECT_NONE);
        FUZZ_CHECK(fuzz_events_equal(&ev, &again));
    }

    tl_arena_free(&arena);
    return 0;
}
