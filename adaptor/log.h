/* log: one line per event on stderr.
 *
 * Format: "YYYY/MM/DD HH:MM:SS.mmm LEVEL [component] message key=value ...". The message
 * says what happened; the fields name what it happened to (sandbox=, pod=<ns>/<name>, vm=,
 * duration_ms=, error=), values quoted by log_value when they are not bare words. The message
 * text of the Go daemon's key lines (`create a sandbox <id> for pod <pod> in namespace <ns>`,
 * `Choosing <image> ...`) is kept verbatim because tooling greps for them. The module owns
 * no memory; callers must never pass secrets (credentials, tokens, keys, initdata bodies). */
#ifndef ADAPTOR_LOG_H
#define ADAPTOR_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn"/"warning", "error" (case-insensitive). -1 if unknown. */
int log_level_parse(const char *s);
void log_level_set(enum log_level lvl);

/* s as a field value into buf[cap]: unchanged when it is a non-empty run of bytes other than
 * space, '"', '=' and control bytes, else in double quotes with '"' and '\\' escaped (cut
 * to fit). Returns buf. */
const char *log_value(char *buf, size_t cap, const char *s);

void log_write(enum log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_write(LOG_DEBUG, (c), __VA_ARGS__)
#define log_info(c, ...) log_write(LOG_INFO, (c), __VA_ARGS__)
#define log_warn(c, ...) log_write(LOG_WARN, (c), __VA_ARGS__)
#define log_error(c, ...) log_write(LOG_ERROR, (c), __VA_ARGS__)

#endif
