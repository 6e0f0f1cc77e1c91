/*
 * config_print — tl_config_print_summary, what `tailord --check` and
 * `tailorctl` show of a loaded configuration: every setting as it will be
 * used (defaults included), with secrets masked (kafka.properties whose key
 * is tl_config_is_secret_key or whose value came from ${NAME}, the password
 * of the Redis URL), and the features
 * and triggers with the text of their expressions.
 */
#include "config.h"
#include "config_int.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "feature.h"
#include "log.h"
#include "rule.h"
#include "schemas.h"

/* Writes url with the password (or, without a ':', all of the user info)
 * replaced by ***.  The user info ends at the last '@' before any query. */
static void put_masked_url(FILE *out, const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep) {
        fputs(url, out);
        return;
    }
    const char *ui = sep + 3, *q = strchr(ui, '?'), *at = NULL;
    for (const char *p = ui; *p && (!q || p < q); p++)
        if (*p == '@') at = p;
    const char *rest = url;
    if (at) {
        const char *colon = memchr(ui, ':', (size_t)(at - ui));
        const char *from = colon ? colon + 1 : ui;
        fwrite(url, 1, (size_t)(from - url), out);
        fputs("***", out);
        rest = at;
    }
    /* A password may also come as a query parameter. */
    const char *pw = q ? strstr(q, "password=") : NULL;
    if (pw) {
        fwrite(rest, 1, (size_t)(pw + 9 - rest), out);
        fputs("***", out);
        rest = pw + 9 + strcspn(pw + 9, "&");
    }
    fputs(rest, out);
}

static void print_kafka(const tl_config *c, FILE *out)
{
    char d1[32];
    fprintf(out,
            "kafka\n  brokers        %s\n  group          %s\n"
            "  input          ",
            c->brokers, c->group);
    for (size_t i = 0; i < c->ninputs; i++)
        fprintf(out, "%s%s", i ? ", " : "", c->inputs[i]);
    fprintf(out, "\n  output         %s\n  dead letters   %s\n"
            "  audit          %s\n", c->output, c->dead_letter, c->audit);
    for (size_t i = 0; i < c->nproperties; i++)
        fprintf(out, "  property       %s = %s\n", c->properties[i].key,
                tl_config_is_secret_key(c->properties[i].key) ||
                        c->properties[i].from_env
                    ? "***"
                    : c->properties[i].val);
    fprintf(out, "  batches        up to %d events or %s\n", c->batch_size,
            tl_config_duration_fmt(c->batch_timeout_ms, d1, sizeof d1));
}

static void print_redis(const tl_config *c, FILE *out)
{
    char d1[32], d2[32], d3[32];
    fputs("redis\n  url            ", out);
    put_masked_url(out, c->redis_url);
    fprintf(out,
            "\n  prefix         '%s'\n  ttl            %s\n"
            "  timeout        %s\n  flush interval %s\n",
            c->redis_prefix,
            c->redis_ttl_ms
                ? tl_config_duration_fmt(c->redis_ttl_ms, d1, sizeof d1)
                : "none (keys never expire)",
            tl_config_duration_fmt(c->redis_timeout_ms, d2, sizeof d2),
            c->redis_flush_interval_ms
                ? tl_config_duration_fmt(c->redis_flush_interval_ms, d3,
                                         sizeof d3)
                : "0 (after every batch)");
    if (c->key_ttl_ms != c->redis_ttl_ms)
        fprintf(out, "  key ttl        %s (the longest feature ttl)\n",
                tl_config_duration_fmt(c->key_ttl_ms, d1, sizeof d1));
}

/* events, state, daemon, log and http. */
static void print_small_sections(const tl_config *c, FILE *out)
{
    char d1[32];
    fprintf(out, "events\n  format         %s\n  schema         %s\n",
            c->format == TL_FMT_JSON ? "json" : "avro",
            c->schema_json &&
                    !strcmp(c->schema_json, tl_schema_interaction_event)
                ? "built-in interaction_event"
                : "from events.schema");
    if (c->writer_schema_json)
        fputs("  writer schema  from events.writer_schema\n", out);
    fprintf(out, "  max lateness   %s\n",
            tl_config_duration_fmt(c->max_lateness_ms, d1, sizeof d1));
    fprintf(out, "  offset reset   %s\n",
            c->on_offset_reset == TL_RESET_SKIP ? "skip" : "reapply");
    char t[TL_TIMEBUF];
    fprintf(out, "  times          from %s to %s ahead of the clock\n",
            tl_fmt_time(t, c->min_time_ms),
            tl_config_duration_fmt(c->max_future_ms, d1, sizeof d1));
    fprintf(out, "state\n  cache          %zu customers, %zu bytes each\n",
            c->cache_size, c->block_size);
    fprintf(out, "daemon\n  shutdown       within %s\n",
            tl_config_duration_fmt(c->shutdown_timeout_ms, d1, sizeof d1));
    fprintf(out, "log\n  level          %s\n  format         %s\n",
            tl_log_level_name(c->log_level),
            tl_log_format_name(c->log_format));
    fprintf(out, "http\n  listen         %s\n  token          %s\n",
            c->http_listen ? c->http_listen : "(off)",
            c->http_token ? "(set)" : "(none)");
}

/* One line per feature: its kind and the options it has. */
static void print_features(const tl_config *c, FILE *out)
{
    char d1[32], d2[32];
    fprintf(out, "features (%zu)\n", c->nfeatures);
    for (size_t i = 0; i < c->nfeatures; i++) {
        const tl_feature *f = &c->features[i];
        const feat_text *t =
            c->text && c->text->features ? &c->text->features[i] : NULL;
        const tl_feature_kind_info *ki = tl_feature_kind_get(f->kind);
        fprintf(out, "  %-20s %-13s", f->name, ki ? ki->name : "?");
        if (t && t->field) fprintf(out, " field %s", t->field);
        if (f->window_ms)
            fprintf(out, " window %s by %s",
                    tl_config_duration_fmt(f->window_ms, d1, sizeof d1),
                    tl_config_duration_fmt(f->resolution_ms, d2, sizeof d2));
        if (f->k) fprintf(out, " k %u", (unsigned)f->k);
        if (f->capacity) fprintf(out, " capacity %u", (unsigned)f->capacity);
        if (f->n) fprintf(out, " n %u", (unsigned)f->n);
        if (f->exact_up_to)
            fprintf(out, " exact_up_to %u", (unsigned)f->exact_up_to);
        if (f->precision) fprintf(out, " precision %u", (unsigned)f->precision);
        if (f->half_life_ms)
            fprintf(out, " half_life %s",
                    tl_config_duration_fmt(f->half_life_ms, d1, sizeof d1));
        if (ki && ki->of != TL_OPT_NO && f->of >= 0 &&
            (size_t)f->of < c->nfeatures)
            fprintf(out, " of %s", c->features[f->of].name);
        if (f->ttl_ms)
            fprintf(out, " ttl %s",
                    tl_config_duration_fmt(f->ttl_ms, d1, sizeof d1));
        if (t && t->where) fprintf(out, " where %s", t->where);
        fputc('\n', out);
    }
}

/* A trigger's lines: the head line, then one line per part it has. */
static void print_trigger(const tl_rule *r, const rule_text *t, FILE *out)
{
    char d1[32];
    fprintf(out, "  %-20s mode %s", r->name, tl_rule_mode_name(r->mode));
    if (r->cooldown_ms)
        fprintf(out, ", cooldown %s",
                tl_config_duration_fmt(r->cooldown_ms, d1, sizeof d1));
    fprintf(out, ", channel %s\n",
            r->has_channel ? tl_channel_name(r->channel) : "(the event's)");
    if (t && t->when) fprintf(out, "    when     %s\n", t->when);
    if (t && t->cond) fprintf(out, "    if       %s\n", t->cond);
    if (t && t->message) fprintf(out, "    message  %s\n", t->message);
    for (size_t j = 0; j < r->nattrs; j++)
        fprintf(out, "    attr     %s = %s\n", r->attrs[j].key,
                t && j < t->nattrs && t->attrs[j] ? t->attrs[j] : "");
    if (r->has_cap)
        fprintf(out, "    cap      %u per %s on %s\n", (unsigned)r->cap.max,
                tl_config_duration_fmt(r->cap.per_ms, d1, sizeof d1),
                tl_channel_name(r->cap.channel));
    if (r->has_quiet) {
        const tl_quiet *q = &r->quiet;
        fprintf(out, "    quiet    %02d:%02d to %02d:%02d, ", q->from_min / 60,
                q->from_min % 60, q->to_min / 60, q->to_min % 60);
        if (q->tz_name) fprintf(out, "tz %s\n", q->tz_name);
        else fprintf(out, "tz from %s\n", t && t->tz ? t->tz : "?");
    }
    if (r->group)
        fprintf(out, "    group    %s, priority %d\n", r->group, r->priority);
    else if (r->priority)
        fprintf(out, "    priority %d\n", r->priority);
    if (r->holdout > 0) {
        char num[TL_NUMBUF];
        tl_fmt_number(num, r->holdout * 100);
        fprintf(out, "    holdout  %s%% (control group, not acted on)\n",
                num);
    }
    fprintf(out, "    version  %s\n", r->version);
}

void tl_config_print_summary(const tl_config *c, FILE *out)
{
    fprintf(out, "configuration %s\n", c->path ? c->path : "");
    print_kafka(c, out);
    print_redis(c, out);
    print_small_sections(c, out);
    print_features(c, out);
    fprintf(out, "triggers (%zu)\n", c->nrules);
    for (size_t i = 0; i < c->nrules; i++)
        print_trigger(&c->rules[i],
                      c->text && c->text->rules ? &c->text->rules[i] : NULL,
                      out);
}
