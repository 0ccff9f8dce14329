#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The only process-wide setting besides the daemon context: it is written once at start-up,
 * before the thread pool exists, and read-only afterwards. */
static enum log_level log_min = LOG_INFO;

static const char *const log_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int log_level_parse(const char *s)
{
    if (!strcasecmp(s, "debug"))
        return LOG_DEBUG;
    if (!strcasecmp(s, "info"))
        return LOG_INFO;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return LOG_WARN;
    if (!strcasecmp(s, "error"))
        return LOG_ERROR;
    return -1;
}

void log_level_set(enum log_level lvl)
{
    log_min = lvl;
}

const char *log_value(char *buf, size_t cap, const char *s)
{
    if (!cap)
        return buf;
    bool bare = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && bare; p++)
        bare = *p > ' ' && *p != '"' && *p != '=' && *p != 0x7f;
    size_t n = 0;
    if (bare) {
        snprintf(buf, cap, "%s", s);
        return buf;
    }
    if (cap < 3) {
        buf[0] = '\0';
        return buf;
    }
    buf[n++] = '"';
    for (; *s; s++) {
        size_t need = *s == '"' || *s == '\\' ? 2 : 1;
        if (n + need + 2 > cap) /* room for the closing quote and the NUL */
            break;
        if (need == 2)
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

void log_write(enum log_level lvl, const char *component, const char *fmt, ...)
{
    if (lvl < log_min)
        return;

    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d/%02d/%02d %02d:%02d:%02d.%03ld %s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), log_names[lvl], component);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    /* One line per event: a stray newline in a message would let input forge log lines. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    /* A single write keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
