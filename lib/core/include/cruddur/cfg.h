/* cfg.h - configuration from environment variables.
 *
 * A missing or malformed required variable stops the program at start with
 * one line on stderr naming the variable (exit status 2): a service that
 * cannot be configured must not half-start.
 */
#ifndef CRUDDUR_CFG_H
#define CRUDDUR_CFG_H

/* The value of `name`, or `def` when unset or empty. Never NULL unless def is. */
const char *cfg_str(const char *name, const char *def);

/* The value of `name`; exits(2) with "NAME is required: <why>" when unset. */
const char *cfg_require(const char *name, const char *why);

/* An integer in [min, max], or `def` when unset; exits(2) when malformed or
 * out of range. */
long cfg_int(const char *name, long def, long min, long max);

/* The first of the names that is set and non-empty, or def. names ends with NULL. */
const char *cfg_first(const char *const *names, const char *def);

#endif
