/*
 * fuzz_avro — the Avro event decoder on arbitrary bytes (libFuzzer).
 *
 * Each input is one Kafka message value, decoded twice:
 *   1. with the built-in schema (reader = writer = interaction_event.avsc);
 *      an accepted event must satisfy event.h's invariants, and encoding it
 *      again with tl_event_encoder and decoding that must give the same
 *      event (the decoder accepts only what the encoder can reproduce);
 *   2. through writer -> reader resolution, with a producer schema that adds
 *      fields (session_id before ts, score at the end), orders the first two
 *      fields differently and has a channel symbol the reader lacks.
 * The decoders and the encoder are created once (as tailord does) and reused;
 * the arena is new for every input, so nothing carries over between inputs
 * except what the decoders themselves keep.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "event.h"
#include "fuzz_common.h"

#define CHANNEL_ENUM_KIOSK                                                     \
    "{\"type\":\"enum\",\"name\":\"Channel\",\"symbols\":[\"kiosk\","         \
    "\"chat\",\"web\",\"app\",\"store\",\"call_center\",\"email\","           \
    "\"other\"]}"

static const char writer_schema[] =
    "{\"type\":\"record\",\"name\":\"InteractionEvent\","
    "\"namespace\":\"io.tailor\",\"fields\":["
    "{\"name\":\"customer_id\",\"type\":\"string\"},"
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"session_id\",\"type\":\"string\"},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"channel\",\"type\":" CHANNEL_ENUM_KIOSK "},"
    "{\"name\":\"type\",\"type\":\"string\"},"
    "{\"name\":\"item\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"amount\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"store\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"score\",\"type\":[\"null\",\"double\"]}]}";

static tl_event_decoder *dec_builtin, *dec_writer;
static tl_event_encoder *enc;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void cleanup(void)
{
    tl_event_decoder_free(dec_builtin);
    tl_event_decoder_free(dec_writer);
    tl_event_encoder_free(enc);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[TL_ERRSZ];
    (void)argc;
    (void)argv;
    dec_builtin = tl_event_decoder_new(TL_FMT_AVRO, NULL, NULL, err, sizeof err);
    if (!dec_builtin) {
        fprintf(stderr, "fuzz_avro: built-in decoder: %s\n", err);
        abort();
    }
    dec_writer = tl_event_decoder_new(TL_FMT_AVRO, NULL, writer_schema, err,
                                      sizeof err);
    if (!dec_writer) {
        fprintf(stderr, "fuzz_avro: writer-schema decoder: %s\n", err);
        abort();
    }
    enc = tl_event_encoder_new(NULL, err, sizeof err);
    if (!enc) {
        fprintf(stderr, "fuzz_avro: encoder: %s\n", err);
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
    tl_reject r = tl_event_decode(dec_builtin, data, size, &arena, &ev, err,
                                  sizeof err);
    FUZZ_CHECK(fuzz_decode_reason_ok(r));
    if (r != TL_REJECT_NONE) {
        FUZZ_CHECK(err[0] != '\0'); /* a reject always says why */
    } else {
        fuzz_check_event(&ev);
        const void *out;
        size_t outlen;
        int rc = tl_event_encode(enc, &ev, &out, &outlen, err, sizeof err);
        if (rc) fprintf(stderr, "fuzz_avro: re-encoding failed: %s\n", err);
        FUZZ_CHECK(rc == TL_OK);
        r = tl_event_decode(dec_builtin, out, outlen, &arena, &again, err,
                            sizeof err);
        if (r) fprintf(stderr, "fuzz_avro: re-decoding failed: %s\n", err);
        FUZZ_CHECK(r == TL_REJECT_NONE);
        FUZZ_CHECK(fuzz_events_equal(&ev, &again));
    }

    err[0] = '\0';
    r = tl_event_decode(dec_writer, data, size, &arena, &ev, err, sizeof err);
    FUZZ_CHECK(fuzz_decode_reason_ok(r));
    if (r != TL_REJECT_NONE)
        FUZZ_CHECK(err[0] != '\0');
    else
        fuzz_check_event(&ev);

    tl_arena_free(&arena);
    return 0;
}
