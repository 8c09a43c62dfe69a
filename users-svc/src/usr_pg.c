/* usr_pg.c - see usr_pg.h. */
#define _POSIX_C_SOURCE 200809L
#include "usr_pg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cruddur/log.h"
#include "cruddur/ts.h"

#define UPG_BACKOFF_MIN_MS 100
#define UPG_BACKOFF_MAX_MS 1000

struct upg_conn {
  upg_pool *pool;    /* reference */
  PGconn *pg;        /* owned; NULL until connected */
  uint32_t prepared; /* bit i: stmts[i] prepared on this connection */
  int fresh;         /* connected during the current lease */
  int broken;        /* close on release */
};

struct upg_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a lease came back */
  upg_config cfg;    /* url owned, stmts reference */
  char *url;
  char stmt_timeout[48];
  char connect_timeout[16];
  upg_conn *slots; /* cfg.size */
  upg_conn **idle; /* stack of free slots */
  int n_idle;
  int64_t down_until_us; /* no connect attempts before this */
  int backoff_ms;        /* 0 while PostgreSQL answers */
};

int upg_pool_new(const upg_config *cfg, upg_pool **out) {
  if (cfg == NULL || cfg->url == NULL || cfg->size < 1 || cfg->size > UPG_MAX_SIZE ||
      cfg->n_stmts > UPG_MAX_STMTS || cfg->statement_timeout_ms <= 0)
    return -1;
  upg_pool *p = calloc(1, sizeof *p);
  if (p == NULL) return -1;
  p->url = strdup(cfg->url);
  p->slots = calloc((size_t)cfg->size, sizeof *p->slots);
  p->idle = calloc((size_t)cfg->size, sizeof *p->idle);
  if (p->url == NULL || p->slots == NULL || p->idle == NULL) {
    free(p->url);
    free(p->slots);
    free(p->idle);
    free(p);
    return -1;
  }
  p->cfg = *cfg;
  p->cfg.url = p->url;
  snprintf(p->stmt_timeout, sizeof p->stmt_timeout, "SET statement_timeout = %d",
           cfg->statement_timeout_ms);
  snprintf(p->connect_timeout, sizeof p->connect_timeout, "%d",
           cfg->connect_timeout_s < 2 ? 2 : cfg->connect_timeout_s);
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* same clock as ts_mono_us */
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  for (int i = 0; i < cfg->size; i++) {
    p->slots[i].pool = p;
    p->idle[p->n_idle++] = &p->slots[i];
  }
  *out = p;
  return 0;
}

void upg_pool_free(upg_pool *p) {
  if (p == NULL) return;
  for (int i = 0; i < p->cfg.size; i++)
    PQfinish(p->slots[i].pg);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->idle);
  free(p->slots);
  free(p->url);
  free(p);
}

/* ---- SQLSTATE -> domain error ------------------------------------------ */

usr_err upg_sqlstate_err(const char *s) {
  if (s == NULL || s[0] == '\0') return USR_E_UNAVAILABLE; /* no server answer */
  if (strncmp(s, "08", 2) == 0) return USR_E_UNAVAILABLE;  /* connection exception */
  if (strncmp(s, "57P", 3) == 0) return USR_E_UNAVAILABLE; /* shutdown, crash, starting */
  if (strncmp(s, "53", 2) == 0) return USR_E_UNAVAILABLE;  /* out of resources */
  if (strcmp(s, "57014") == 0) return USR_E_UNAVAILABLE;   /* statement_timeout */
  if (strcmp(s, "55P03") == 0) return USR_E_UNAVAILABLE;   /* lock not available */
  if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0) return USR_E_ABORTED;
  if (strcmp(s, "23505") == 0) return USR_E_EXISTS;   /* unique violation */
  if (strncmp(s, "23", 2) == 0) return USR_E_INVALID; /* check, not null */
  if (strncmp(s, "22", 2) == 0) return USR_E_INVALID; /* data exception */
  if (strcmp(s, "42P01") == 0 || strcmp(s, "42703") == 0) return USR_E_SCHEMA;
  return USR_E_INTERNAL;
}

/* ---- connecting --------------------------------------------------------- */

static void upg__note_connect(upg_pool *p, int ok) {
  pthread_mutex_lock(&p->mu);
  if (ok) {
    p->backoff_ms = 0;
    p->down_until_us = 0;
  } else {
    p->backoff_ms = p->backoff_ms == 0 ? UPG_BACKOFF_MIN_MS : p->backoff_ms * 2;
    if (p->backoff_ms > UPG_BACKOFF_MAX_MS) p->backoff_ms = UPG_BACKOFF_MAX_MS;
    p->down_until_us = ts_mono_us() + (int64_t)p->backoff_ms * 1000;
  }
  pthread_mutex_unlock(&p->mu);
}

/* Server notices ("terminating connection due to ...") would go to stderr
 * as raw text; keep them in the JSON log, first line only. */
static void upg__notice(void *arg, const char *message) {
  (void)arg;
  char line[200];
  snprintf(line, sizeof line, "%s", message);
  line[strcspn(line, "\n")] = '\0';
  log_debug("postgres notice: %s", line);
}

static usr_err upg__connect(upg_conn *c) {
  upg_pool *p = c->pool;
  pthread_mutex_lock(&p->mu);
  int waiting = ts_mono_us() < p->down_until_us;
  pthread_mutex_unlock(&p->mu);
  if (waiting) return USR_E_UNAVAILABLE;

  /* Our defaults first, then the URL (expand_dbname): its settings win. */
  const char *keys[] = {"connect_timeout",  "application_name", "keepalives_idle",
                        "tcp_user_timeout", "dbname",           NULL};
  const char *vals[] = {p->connect_timeout, "users-svc", "30", "10000", p->url, NULL};
  PGconn *pg = PQconnectdbParams(keys, vals, 1);
  if (pg != NULL && PQstatus(pg) == CONNECTION_OK) {
    PQsetNoticeProcessor(pg, upg__notice, NULL);
    PGresult *r = PQexec(pg, p->stmt_timeout);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) {
      upg__note_connect(p, 1);
      c->pg = pg;
      c->prepared = 0;
      c->fresh = 1;
      c->broken = 0;
      return USR_OK;
    }
  }
  /* The message may name host and user, never a password (libpq omits it);
   * cut it to its first line. */
  char msg[200];
  snprintf(msg, sizeof msg, "%s", pg != NULL ? PQerrorMessage(pg) : "out of memory");
  msg[strcspn(msg, "\n")] = '\0';
  log_warn("postgres connect failed: %s", msg);
  PQfinish(pg);
  upg__note_connect(p, 0);
  return USR_E_UNAVAILABLE;
}

static void upg__close(upg_conn *c) {
  PQfinish(c->pg);
  c->pg = NULL;
  c->prepared = 0;
  c->broken = 0;
}

usr_err upg_acquire(upg_pool *p, int64_t deadline_us, upg_conn **out) {
  pthread_mutex_lock(&p->mu);
  while (p->n_idle == 0) {
    if (ts_mono_us() >= deadline_us) {
      pthread_mutex_unlock(&p->mu);
      return USR_E_UNAVAILABLE;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline_us / 1000000),
                          .tv_nsec = (long)(deadline_us % 1000000) * 1000};
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
  }
  upg_conn *c = p->idle[--p->n_idle];
  pthread_mutex_unlock(&p->mu);
  c->fresh = 0;
  if (c->pg != NULL && PQstatus(c->pg) != CONNECTION_OK) upg__close(c);
  if (c->pg == NULL) {
    usr_err e = upg__connect(c);
    if (e != USR_OK) {
      upg_release(c);
      return e;
    }
  }
  *out = c;
  return USR_OK;
}

void upg_release(upg_conn *c) {
  upg_pool *p = c->pool;
  if (c->pg != NULL &&
      (c->broken || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE))
    upg__close(c);
  pthread_mutex_lock(&p->mu);
  p->idle[p->n_idle++] = c;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* ---- running statements ------------------------------------------------ */

/* Waits until libpq has a whole result ready, or the deadline. On failure
 * the connection is marked broken (its state is unknown). */
static usr_err upg__wait_ready(upg_conn *c, int64_t deadline_us) {
  while (PQisBusy(c->pg)) {
    int64_t left_us = deadline_us - ts_mono_us();
    if (left_us <= 0) {
      c->broken = 1; /* the query may still run: closing the socket ends it */
      return USR_E_DEADLINE;
    }
    if (PQsocket(c->pg) < 0) { /* libpq closed it: nothing will ever arrive */
      c->broken = 1;
      return USR_E_UNAVAILABLE;
    }
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    int ms = left_us > 1000000 ? 1000 : (int)((left_us + 999) / 1000);
    int n = poll(&pfd, 1, ms);
    if (n < 0 && errno != EINTR) {
      c->broken = 1;
      return USR_E_UNAVAILABLE;
    }
    if (n > 0 && !PQconsumeInput(c->pg)) {
      c->broken = 1;
      return USR_E_UNAVAILABLE;
    }
  }
  return USR_OK;
}

/* Collects every result of the command just sent; keeps the last one (or
 * the first error). */
static usr_err upg__collect(upg_conn *c, int64_t deadline_us, PGresult **out, char *sqlstate) {
  PGresult *keep = NULL;
  usr_err err = USR_OK;
  for (;;) {
    usr_err w = upg__wait_ready(c, deadline_us);
    if (w != USR_OK) {
      PQclear(keep);
      return w;
    }
    PGresult *r = PQgetResult(c->pg);
    if (r == NULL) break;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      if (err == USR_OK) {
        PQclear(keep);
        keep = r;
      } else {
        PQclear(r);
      }
      continue;
    }
    if (err == USR_OK) {
      const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (sqlstate != NULL) snprintf(sqlstate, 6, "%s", s != NULL ? s : "");
      err = upg_sqlstate_err(s);
      if (err == USR_E_INTERNAL) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        /* Server messages about our own SQL (no user data: values are
         * parameters and not echoed in primary messages). */
        log_error("postgres error %s: %.200s", s != NULL ? s : "?", m != NULL ? m : "");
      }
    }
    PQclear(r);
  }
  if (PQstatus(c->pg) != CONNECTION_OK) {
    c->broken = 1;
    if (err == USR_OK) err = USR_E_UNAVAILABLE;
  }
  if (err != USR_OK) {
    PQclear(keep);
    return err;
  }
  if (keep == NULL) return USR_E_INTERNAL;
  *out = keep;
  return USR_OK;
}

static usr_err upg__send_failed(upg_conn *c, char *sqlstate) {
  if (sqlstate != NULL) sqlstate[0] = '\0';
  c->broken = 1;
  return USR_E_UNAVAILABLE;
}

static usr_err upg__exec_once(upg_conn *c, int stmt, int nparams, const char *const *params,
                              int64_t deadline_us, PGresult **out, char *sqlstate) {
  const upg_stmt *s = &c->pool->cfg.stmts[stmt];
  if (!(c->prepared & (1u << stmt))) {
    if (!PQsendPrepare(c->pg, s->name, s->sql, 0, NULL)) return upg__send_failed(c, sqlstate);
    PGresult *r = NULL;
    usr_err e = upg__collect(c, deadline_us, &r, sqlstate);
    if (e != USR_OK) return e;
    PQclear(r);
    c->prepared |= 1u << stmt;
  }
  if (!PQsendQueryPrepared(c->pg, s->name, nparams, params, NULL, NULL, 0))
    return upg__send_failed(c, sqlstate);
  return upg__collect(c, deadline_us, out, sqlstate);
}

usr_err upg_exec(upg_conn *c, int stmt, int nparams, const char *const *params, int retry,
                 int64_t deadline_us, PGresult **out, char *sqlstate) {
  if (sqlstate != NULL) sqlstate[0] = '\0';
  if (stmt < 0 || (size_t)stmt >= c->pool->cfg.n_stmts) return USR_E_INTERNAL;
  if (c->pg == NULL) {
    usr_err e = upg__connect(c);
    if (e != USR_OK) return e;
  }
  usr_err e = upg__exec_once(c, stmt, nparams, params, deadline_us, out, sqlstate);
  /* A connection that sat idle in the pool may have died with a PostgreSQL
   * restart; we only learn it now. Try once on a new one. */
  if (e == USR_E_UNAVAILABLE && c->broken && retry && !c->fresh && ts_mono_us() < deadline_us) {
    upg__close(c);
    e = upg__connect(c);
    if (e == USR_OK) e = upg__exec_once(c, stmt, nparams, params, deadline_us, out, sqlstate);
  }
  return e;
}

usr_err upg_command(upg_conn *c, const char *sql, int64_t deadline_us, char *sqlstate) {
  if (sqlstate != NULL) sqlstate[0] = '\0';
  if (c->pg == NULL) return USR_E_UNAVAILABLE;
  if (!PQsendQuery(c->pg, sql)) return upg__send_failed(c, sqlstate);
  PGresult *r = NULL;
  usr_err e = upg__collect(c, deadline_us, &r, sqlstate);
  if (e == USR_OK) PQclear(r);
  return e;
}
