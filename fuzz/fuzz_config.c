/*
 * fuzz_config — the configuration loader on arbitrary YAML (libFuzzer).
 *
 * Each input is a whole tailord.yaml, loaded with tl_config_load_string.  A
 * rejected configuration must say why as "NAME:LINE:COL: message"; an
 * accepted one is printed (tailord --check) into /dev/null and its event
 * schemas are turned into a decoder, as the pipeline does at start; then it
 * is freed.  Everything is per input: nothing survives but the /dev/null
 * stream.
 *
 * Files.  events.schema and events.writer_schema name files that the loader
 * reads with tl_read_file.  This target is linked with
 * -Wl,--wrap=tl_read_file, so those reads come here instead and are served
 * from memory: a few fixed schema files (the names in the seed corpus and
 * the dictionary), and "No such file or directory" for any other path.  The
 * fuzzer thus never opens a file the input names (no /dev/zero, no FIFO) and
 * runs the same in any directory.  Time zones in quiet_hours are still read
 * from the tz database (lib/tz.c only accepts names that stay inside it).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "event.h"
#include "schemas.h"

#define FIELDS_HEAD                                                            \
    "{\"type\":\"record\",\"name\":\"InteractionEvent\","                     \
    "\"namespace\":\"io.tailor\",\"fields\":["

/* A producer schema that adds two fields (resolves to the built-in one). */
static const char writer_avsc[] =
    FIELDS_HEAD
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"customer_id\",\"type\":\"string\"},"
    "{\"name\":\"session_id\",\"type\":\"string\"},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":\"Channel\","
    "\"symbols\":[\"web\",\"app\",\"store\",\"call_center\",\"email\","
    "\"chat\",\"other\",\"kiosk\"]}},"
    "{\"name\":\"type\",\"type\":\"string\"},"
    "{\"name\":\"item\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"amount\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"store\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"score\",\"type\":[\"null\",\"double\"]}]}";

/* An older producer without item, store and attrs (reader defaults). */
static const char old_avsc[] =
    FIELDS_HEAD
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"customer_id\",\"type\":\"string\"},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":\"Channel\","
    "\"symbols\":[\"web\",\"app\",\"store\",\"call_center\",\"email\","
    "\"chat\",\"other\"]}},"
    "{\"name\":\"type\",\"type\":\"string\"},"
    "{\"name\":\"quantity\",\"type\":[\"null\",\"double\"]},"
    "{\"name\":\"amount\",\"type\":[\"null\",\"double\"]}]}";

/* Lacks `type`, which the reader has without a default: does not resolve. */
static const char lacks_type_avsc[] =
    FIELDS_HEAD
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"customer_id\",\"type\":\"string\"},"
    "{\"name\":\"ts\",\"type\":\"long\"},"
    "{\"name\":\"channel\",\"type\":{\"type\":\"enum\",\"name\":\"Channel\","
    "\"symbols\":[\"web\",\"other\"]}}]}";

static const struct {
    const char *path, *text;
} files[] = {
    {"schemas/interaction_event.avsc", NULL}, /* NULL: the built-in schema */
    {"../schemas/interaction_event.avsc", NULL}, /* config/tailord.yaml's */
    {"schema.avsc", NULL},
    {"writer.avsc", writer_avsc},
    {"old.avsc", old_avsc},
    {"lacks_type.avsc", lacks_type_avsc},
    {"record.avsc", "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}"},
    {"not_json.avsc", "{\"type\": \"record\", \"name\": "},
    {"empty.avsc", ""},
};

char *__wrap_tl_read_file(const char *path, size_t *len, char *err,
                          size_t errsz);

char *__wrap_tl_read_file(const char *path, size_t *len, char *err,
                          size_t errsz)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strcmp(files[i].path, path) != 0) continue;
        const char *text =
            files[i].text ? files[i].text : tl_schema_interaction_event;
        size_t n = strlen(text);
        if (len) *len = n;
        return tl_xstrndup(text, n);
    }
    tl_errf(err, errsz, TL_ERR_IO, "cannot open %s: %s", path,
            strerror(ENOENT));
    return NULL;
}

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void cleanup(void)
{
    if (devnull) fclose(devnull);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* They would win over the file: keep runs independent of the shell. */
    unsetenv("TAILOR_KAFKA_BROKERS");
    unsetenv("TAILOR_REDIS_URL");
    devnull = fopen("/dev/null", "w");
    if (!devnull) abort();
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[TL_ERRSZ];
    err[0] = '\0';
    tl_config *c = tl_config_load_string((const char *)data, size, "fuzz.yaml",
                                         err, sizeof err);
    if (!c) {
        /* "fuzz.yaml:LINE:COL: message", one line */
        int line = 0, col = 0, end = 0;
        if (sscanf(err, "fuzz.yaml:%d:%d:%n", &line, &col, &end) != 2 ||
            end == 0 || line < 1 || col < 1 || strchr(err, '\n')) {
            fprintf(stderr, "fuzz_config: bad error message: '%s'\n", err);
            abort();
        }
        return 0;
    }
    tl_config_print_summary(c, devnull);
    tl_event_decoder *d = tl_event_decoder_new(
        c->format, c->schema_json, c->writer_schema_json, err, sizeof err);
    tl_event_decoder_free(d);
    tl_config_free(c);
    return 0;
}
