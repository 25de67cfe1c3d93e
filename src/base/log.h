/* log.h - structured logging of drover's own messages to stderr.
 *
 * Text:  2026-11-23T03:11:16.123Z info  job started job=0193... pid=4242
 * JSON:  {"ts":"2026-11-23T03:11:16.123Z","level":"info","msg":"job
 * started","job":"0193...","pid":4242}
 *
 * Fields are key/value pairs given as a format string of "key=%x" words:
 *   log_info("job started", "job=%s pid=%d", id, pid);
 * Every word of the field format is one field; values are formatted with
 * printf rules and quoted in text output when they contain spaces.
 * Not thread-safe by design: drover has one loop thread per process. */
#ifndef DROVER_BASE_LOG_H
#define DROVER_BASE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_TEXT, LOG_JSON };

void log_setup(enum log_level level, enum log_format format);
/* Parses "debug|info|warn|error|off" / "text|json". Return 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_msg(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_msg(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_msg(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_ERROR, msg, __VA_ARGS__)

#endif
