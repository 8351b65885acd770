#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

/* The log configuration is the only mutable global besides parsed options. */
static const char *log_program = "corral";
static enum log_level log_max_level = LOG_LEVEL_INFO;
static int log_to_syslog;

void log_init(const char *program, enum log_level level, int use_syslog)
{
	log_program = program;
	log_max_level = level;
	log_to_syslog = use_syslog;
	if (use_syslog)
		openlog(program, LOG_PID, LOG_DAEMON);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const prefix[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	if (log_to_syslog) {
		vsyslog(syslog_prio[level], fmt, ap);
	} else {
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "%s: %s: %s\n", log_program, prefix[level], line);
	}
	va_end(ap);
}
