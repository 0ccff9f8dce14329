/* log: one line per event on stderr.
 *
 * Format: "YYYY/MM/DD HH:MM:SS.mmm LEVEL [component] message". The message text of the
 * Go daemon's key lines is kept verbatim because tooling greps for them. The module owns
 * no memory; callers must never pass secrets (credentials, tokens, keys, initdata bodies). */
#ifndef ADAPTOR_LOG_H
#define ADAPTOR_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn"/"warning", "error" (case-insensitive). -1 if unknown. */
int log_level_parse(const char *s);
void log_level_set(enum log_level lvl);

void log_write(enum log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_write(LOG_DEBUG, (c), __VA_ARGS__)
#define log_info(c, ...) log_write(LOG_INFO, (c), __VA_ARGS__)
#define log_warn(c, ...) log_write(LOG_WARN, (c), __VA_ARGS__)
#define log_error(c, ...) log_write(LOG_ERROR, (c), __VA_ARGS__)

#endif
