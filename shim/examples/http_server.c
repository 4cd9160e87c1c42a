/*
** http_server.c: one SQLite database served over HTTP the way Datasette's
** JSON API serves it, on sqlq in dispatch mode.  libevent's evhttp parses
** HTTP and runs the loop (sqlq_libevent.h attaches the handle to it);
** jansson reads and writes JSON.  One thread: a request becomes an sqlq
** task, and its completion, run by the loop, answers it.
**
**   http_server [OPTIONS] DBPATH PORT      (PORT 0: any free port)
**     --timelimit MS   a read's time limit (default 1000)
**     --max-rows N     rows a read returns at most (default 1000)
**     --readers N      reader threads (default 2)
**     --queue N        tasks that may wait (default 65536)
**     --probe-ms MS    measure the loop's stalls with an MS timer (default
**                      0: off); GET /-/stats reports the worst
**
** NAME is DBPATH's file name without its extension.
**   GET  /NAME.json?sql=SQL[&_timelimit=MS][&_shape=objects][&p=v...]
**        A read.  Every argument not starting with "_" binds the SQL's :p.
**        {"ok":true,"database":NAME,"query":{"sql":..,"params":{..}},
**         "columns":[..],"rows":[[..]],"truncated":false,"query_ms":1.2,
**         "task":N}
**        _timelimit can only lower the server's limit.  A blob is
**        {"$base64":true,"encoded":".."}, as is text that is not UTF-8.
**   POST /NAME.json   body {"sql":SQL,"params":{"p":v}|[v,..]}: a write, in
**        the writer's queue: {"ok":true,"changes":N,"last_insert_rowid":N,
**        "columns":[..],"rows":[..],"task":N} (rows: RETURNING).
**   GET  /-/activity  the requests in flight, with their task ids, and what
**        the handle's connections run (sqlq_activity(): the timelimit
**        extension's timelimit_activity table).
**   POST /-/cancel/ID cancels task ID: a queued one never runs, a running
**        one is interrupted.  404 if no such task is in flight.
**   GET  /-/stats     sqlq_stats(), and the loop's worst stall since the
**        last GET /-/stats.
**
** Errors are {"ok":false,"error":MESSAGE,"status":HTTP,"code":CODE,
** "title":..}, CODE being the sqlq or SQLite code: 400 bad SQL or
** parameters, 403 a write on a read-only file, 404, 405, 500 anything else
** (code -13, SQLQ_EUNKNOWN: a write whose outcome is unknown; every other
** failed write wrote nothing), 503 a full queue (with Retry-After), a task
** canceled, a database locked by another process, a request after
** SIGTERM, 504 a query that ran out of time.  evhttp itself answers a
** malformed request (400) or a body over 1 MiB or headers over 64 KiB
** (413), in HTML.
**
** A client that closes or resets its connection while its request runs
** has its task canceled (a half-close, shutdown(SHUT_WR), counts as gone).
** SIGINT or SIGTERM stops accepting, answers the requests in flight and
** any later request on an open connection (503), and exits 0.
**
** Why evhttp: it is in Debian (libevent-dev, beside the libevent adapter),
** it is a whole HTTP/1.1 server with keep-alive, body limits and timeouts,
** and it runs on the loop the adapter attaches to, so one thread serves
** every connection.  libmicrohttpd runs its own threads or select loop,
** and h2o is not packaged for Debian 12.
*/
#include "sqlq.h"
#include "sqlq_libevent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/queue.h> /* TAILQ_FOREACH, for evhttp's query arguments */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_BODY (1 << 20)    /* Bytes of a POST body */
#define MAX_HEADERS (1 << 16) /* Bytes of the request line and headers */

/* What a request is for. */
enum { REQ_READ, REQ_WRITE };

/* A request whose task is in flight. */
typedef struct Req {
  struct evhttp_request *req;
  struct event *gone; /* Fires if the client disconnects */
  int kind;           /* REQ_* */
  int objects;        /* _shape=objects */
  int64_t task;       /* Its task's id */
  double t0;          /* When it started, ms */
  json_t *query;      /* READ: {"sql":..,"params":{..}} */
  struct Req *prev, *next;
} Req;

static struct {
  sqlq *q;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *listener;
  const char *name; /* The database's name in URLs */
  size_t nname;
  int timelimit_ms;
  Req *inflight; /* The requests in flight, newest first */
  int nsending;  /* Replies not yet sent whole */
  int quitting;
  double probe_at;    /* When the probe timer should fire next, ms */
  double probe_ms;    /* Its period, 0: off */
  double worst_stall; /* The worst lateness since the last /-/stats, ms */
} S;

/* A monotonic clock, in ms. */
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Exits if v is NULL: jansson failed to allocate. */
static json_t *must(json_t *v) {
  if (v == NULL) {
    fputs("http_server: out of memory\n", stderr);
    exit(1);
  }
  return v;
}

/*
** n bytes of text as a JSON string.  Text from the client, from SQLite's
** messages and from the database file need not be UTF-8, which JSON must
** be: each byte that does not begin a valid sequence becomes U+FFFD.
*/
static json_t *jtext(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  char *out, *o;
  size_t i = 0;
  if (v) return v;
  o = out = malloc(n * 3 + 1);
  if (out == NULL) must(NULL);
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80       ? 1
                 : c >> 5 == 6  ? 2
                 : c >> 4 == 14 ? 3
                 : c >> 3 == 30 ? 4
                                : 0;
    json_t *one = len && i + len <= n ? json_stringn(s + i, len) : NULL;
    if (one) {
      memcpy(o, s + i, len);
      o += len;
      i += len;
      json_decref(one);
    } else {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  v = must(json_stringn(out, (size_t)(o - out)));
  free(out);
  return v;
}

/* A NUL-terminated jtext(). */
static json_t *jstr(const char *s) {
  return jtext(s, strlen(s));
}

/*
** Ends the loop once quitting, nothing is in flight and every reply is
** sent; or, if some reply is still being sent, 2 s later at most.
*/
static void maybe_exit(void) {
  static const struct timeval drain = {2, 0};
  if (!S.quitting || S.inflight) return;
  event_base_loopexit(S.base, S.nsending ? &drain : NULL);
}

/* A reply was sent whole. */
static void on_sent(struct evhttp_request *req, void *arg) {
  (void)arg;
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
  S.nsending--;
  maybe_exit();
}

/* A connection closed before its reply was sent whole (evhttp then never
** calls on_sent). */
static void on_unsent(struct evhttp_connection *evcon, void *arg) {
  (void)evcon;
  (void)arg;
  S.nsending--;
  maybe_exit();
}

/* Sends body (which this steals) with HTTP status code. */
static void reply(struct evhttp_request *req, int code, json_t *body) {
  struct evbuffer *out = evbuffer_new();
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (out == NULL || text == NULL) {
    fputs("http_server: out of memory\n", stderr);
    exit(1);
  }
  evbuffer_add(out, text, strlen(text));
  free(text);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                    "application/json; charset=utf-8");
  if (S.quitting) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
                      "close");
  }
  /* One reply at a time per connection: exactly one of these runs. */
  evhttp_request_set_on_complete_cb(req, on_sent, NULL);
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_unsent,
                                NULL);
  S.nsending++;
  evhttp_send_reply(req, code, NULL, out);
  evbuffer_free(out);
}

/* The HTTP status of an sqlq or SQLite code, and its title. */
static int http_status(int code, const char **title) {
  static const struct {
    int code, http;
    const char *title;
  } map[] = {
      {SQLQ_ETIMEOUT, 504, "SQL Interrupted"},
      {SQLQ_EFULL, 503, "Queue Full"},
      {SQLQ_ECANCELED, 503, "Canceled"},
      {SQLQ_ECLOSED, 503, "Shutting Down"},
      {SQLQ_EREADONLY, 403, "Read Only"},
      {SQLQ_EINVAL, 400, "Invalid SQL"},
      {SQLQ_EPARAMS, 400, "Invalid Parameters"},
      {SQLQ_ETXNCTL, 400, "Invalid SQL"},
      {SQLITE_ERROR, 400, "Invalid SQL"},
      /* A statement that fails to compile on a connection that has not yet
      ** read the schema can say SCHEMA instead of ERROR */
      {SQLITE_SCHEMA, 400, "Invalid SQL"},
      {SQLITE_CONSTRAINT, 400, "Constraint Failed"},
      {SQLITE_MISMATCH, 400, "Invalid SQL"},
      {SQLITE_RANGE, 400, "Invalid Parameters"},
      {SQLITE_TOOBIG, 400, "Too Big"},
      {SQLITE_AUTH, 400, "Not Allowed"},
      {SQLITE_READONLY, 403, "Read Only"},
      {SQLITE_BUSY, 503, "Database Locked"},
      {SQLITE_LOCKED, 503, "Database Locked"},
  };
  size_t i;
  int primary = code > 0 ? code & 0xff : code;
  for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
    if (map[i].code == primary) {
      *title = map[i].title;
      return map[i].http;
    }
  }
  *title = code == SQLQ_EUNKNOWN ? "Outcome Unknown" : "Server Error";
  return 500;
}

/*
** Answers with an error.  code is an sqlq or SQLite code (0: none); http
** is the status, or 0 for the one that code maps to.  msg NULL: code's text.
*/
static void reply_error(struct evhttp_request *req, int http, int code,
                        const char *msg) {
  const char *title = http == 404   ? "Not Found"
                      : http == 405 ? "Method Not Allowed"
                      : http == 500 ? "Server Error"
                                    : "Bad Request";
  if (http == 0) http = http_status(code, &title);
  if (code == SQLQ_EFULL) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                      "1");
  }
  reply(req, http,
        must(json_pack("{sbsosisiss}", "ok", 0, "error",
                       jstr(msg ? msg : sqlq_strerror(code)), "status", http,
                       "code", code, "title", title)));
}

/* The base64 alphabet: blobs in JSON. */
static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of n bytes (malloc). */
static char *base64(const unsigned char *p, size_t n) {
  const char *abc = B64;
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  size_t i;
  if (out == NULL) return NULL;
  for (i = 0; i + 2 < n; i += 3, o += 4) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    o[0] = abc[v >> 18], o[1] = abc[v >> 12 & 63];
    o[2] = abc[v >> 6 & 63], o[3] = abc[v & 63];
  }
  if (i < n) {
    uint32_t v =
        (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    o[0] = abc[v >> 18], o[1] = abc[v >> 12 & 63];
    o[2] = i + 1 < n ? abc[v >> 6 & 63] : '=', o[3] = '=';
    o += 4;
  }
  *o = 0;
  return out;
}

/* A cell as JSON. */
static json_t *json_cell(const sqlq_result *r, int row, int col) {
  int64_t n;
  const void *p;
  double d;
  json_t *v;
  char *b64;
  switch (sqlq_result_type(r, row, col)) {
  case SQLITE_INTEGER:
    return must(json_integer(sqlq_result_int(r, row, col)));
  case SQLITE_FLOAT:
    d = sqlq_result_double(r, row, col);
    return must(isfinite(d) ? json_real(d) : json_null());
  case SQLITE_TEXT:
    p = sqlq_result_blob(r, row, col, &n);
    if ((v = json_stringn(p, (size_t)n)) != NULL) return v;
    /* Not UTF-8: sent as its bytes */
    /* fall through */
  case SQLITE_BLOB:
    p = sqlq_result_blob(r, row, col, &n);
    b64 = base64(p, (size_t)n);
    if (b64 == NULL) must(NULL);
    v = must(json_pack("{sbss}", "$base64", 1, "encoded", b64));
    free(b64);
    return v;
  default:
    return must(json_null());
  }
}

/* Adds a result's columns and rows to o: rows as arrays, or objects. */
static void add_rows(json_t *o, const sqlq_result *r, int objects) {
  json_t *cols = must(json_array()), *rows = must(json_array());
  int row, col, ncol = sqlq_result_columns(r);
  for (col = 0; col < ncol; col++) {
    json_array_append_new(cols, jstr(sqlq_result_column_name(r, col)));
  }
  for (row = 0; row < sqlq_result_rows(r); row++) {
    json_t *v = must(objects ? json_object() : json_array());
    for (col = 0; col < ncol; col++) {
      if (objects) {
        json_t *key = jstr(sqlq_result_column_name(r, col));
        json_object_set_new(v, json_string_value(key), json_cell(r, row, col));
        json_decref(key);
      } else {
        json_array_append_new(v, json_cell(r, row, col));
      }
    }
    json_array_append_new(rows, v);
  }
  json_object_set_new(o, "columns", cols);
  json_object_set_new(o, "rows", rows);
}

/* The requests in flight, for /-/activity. */
static json_t *requests_json(void) {
  json_t *a = must(json_array());
  const Req *r;
  static const char *kinds[] = {"read", "write"};
  for (r = S.inflight; r; r = r->next) {
    json_t *o = must(json_pack("{sIsssf}", "task", (json_int_t)r->task, "kind",
                               kinds[r->kind], "ms", now_ms() - r->t0));
    if (r->query) json_object_set(o, "sql", json_object_get(r->query, "sql"));
    json_array_append_new(a, o);
  }
  return a;
}

/* Takes r off the list and frees it. */
static void req_free(Req *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    S.inflight = r->next;
  if (r->next) r->next->prev = r->prev;
  if (r->gone) event_free(r->gone);
  json_decref(r->query);
  free(r);
  maybe_exit();
}

/* A task's completion: runs on the loop's thread, in sqlq_dispatch(). */
static void on_done(sqlq_result *res, void *udata) {
  Req *r = udata;
  int status = sqlq_result_status(res);
  json_t *o;
  if (status != 0) {
    reply_error(r->req, 0, status, sqlq_result_error(res));
    req_free(r);
    return;
  }
  o = must(json_pack("{sb}", "ok", 1));
  if (r->kind == REQ_READ) {
    json_object_set_new(o, "database", must(json_string(S.name)));
    json_object_set(o, "query", r->query);
  } else {
    json_object_set_new(o, "changes",
                        must(json_integer(sqlq_result_changes(res))));
    json_object_set_new(o, "last_insert_rowid",
                        must(json_integer(sqlq_result_last_insert_rowid(res))));
  }
  add_rows(o, res, r->objects);
  json_object_set_new(o, "truncated",
                      must(json_boolean(sqlq_result_truncated(res))));
  json_object_set_new(o, "query_ms",
                      must(json_real(round((now_ms() - r->t0) * 1e3) / 1e3)));
  json_object_set_new(o, "task", must(json_integer(r->task)));
  reply(r->req, 200, o);
  req_free(r);
}

/* The client of r disconnected: its task is canceled, and its completion
** answers a connection that evhttp then finds closed and frees. */
static void on_gone(evutil_socket_t fd, short what, void *arg) {
  Req *r = arg;
  char c;
  ssize_t n = 0;
  /* EV_READ: a reset (EPOLLERR), an end of stream, or a pipelined request */
  if (!(what & EV_CLOSED)) n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    if (event_add(r->gone, NULL) != 0) must(NULL); /* Woken for nothing */
    return;
  }
  event_free(r->gone);
  r->gone = NULL;
  if (n > 0) {
    /* A request pipelined behind this one: from now on watch only for the
    ** close (a reset then goes unseen until the task ends). */
    r->gone = event_new(S.base, fd, EV_CLOSED, on_gone, r);
    if (r->gone == NULL || event_add(r->gone, NULL) != 0) must(NULL);
    return;
  }
  sqlq_cancel(S.q, r->task); /* SQLQ_ENOTFOUND: it is ending anyway */
}

/*
** Submits call for req; the completion answers.  query (stolen) is what a
** read echoes.  If the task is refused, answers at once.
*/
static void start(struct evhttp_request *req, int kind, sqlq_call *call,
                  json_t *query, int objects) {
  Req *r = calloc(1, sizeof(*r));
  struct bufferevent *bev =
      evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
  int64_t id;
  if (r == NULL) must(NULL);
  if (S.quitting) { /* A keep-alive client's request after SIGTERM */
    reply_error(req, 0, SQLQ_ECLOSED, "the server is shutting down");
    json_decref(query);
    free(r);
    return;
  }
  r->req = req;
  r->kind = kind;
  r->objects = objects;
  r->query = query;
  r->t0 = now_ms();
  call->done = on_done;
  call->udata = r;
  id = sqlq_submit(S.q, call);
  if (id < 0) {
    reply_error(req, 0, (int)id, NULL);
    json_decref(query);
    free(r);
    return;
  }
  r->task = id;
  r->next = S.inflight;
  if (S.inflight) S.inflight->prev = r;
  S.inflight = r;
  /* evhttp reads nothing more until it has answered, so it would not see
  ** the client go; EV_CLOSED sees a close without reading, EV_READ a
  ** reset. */
  r->gone = event_new(S.base, bufferevent_getfd(bev), EV_READ | EV_CLOSED,
                      on_gone, r);
  if (r->gone == NULL || event_add(r->gone, NULL) != 0) must(NULL);
}

/* A read: GET /NAME.json?sql=... */
static void do_read(struct evhttp_request *req) {
  struct evkeyvalq args;
  struct evkeyval *kv;
  const char *sql = NULL, *shape = NULL, *uriq;
  char *end;
  long limit = 0;
  int n = 0, i;
  sqlq_value *vals;
  const char **names;
  json_t *params = must(json_object());
  sqlq_call call = {.kind = SQLQ_READ};

  uriq = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
  TAILQ_INIT(&args);
  if (evhttp_parse_query_str(uriq ? uriq : "", &args) != 0) {
    json_decref(params);
    reply_error(req, 400, 0, "malformed query string");
    return;
  }
  TAILQ_FOREACH(kv, &args, next) {
    /* evhttp decodes the values, not the keys */
    char *key = evhttp_uridecode(kv->key, 1, NULL);
    if (key == NULL) must(NULL);
    free(kv->key);
    kv->key = key;
    n += kv->key[0] != '_' && strcmp(kv->key, "sql");
  }
  vals = calloc((size_t)n + 1, sizeof(*vals));
  names = calloc((size_t)n + 1, sizeof(*names));
  if (vals == NULL || names == NULL) must(NULL);
  i = 0;
  TAILQ_FOREACH(kv, &args, next) {
    if (strcmp(kv->key, "sql") == 0) {
      sql = kv->value;
    } else if (strcmp(kv->key, "_timelimit") == 0) {
      limit = strtol(kv->value, &end, 10);
      if (*kv->value == 0 || *end != 0 || limit <= 0 || limit > INT_MAX) {
        limit = -1;
      }
    } else if (strcmp(kv->key, "_shape") == 0) {
      shape = kv->value;
    } else if (kv->key[0] != '_') {
      /* The name as the SQL writes it: ":p" for p. */
      char *name = malloc(strlen(kv->key) + 2);
      if (name == NULL) must(NULL);
      name[0] = ':';
      strcpy(name + 1, kv->key);
      names[i] = name;
      vals[i++] = sqlq_text(kv->value);
      json_t *key = jstr(kv->key);
      json_object_set_new(params, json_string_value(key), jstr(kv->value));
      json_decref(key);
    }
  }
  if (sql == NULL) {
    reply_error(req, 400, 0, "sql= is required");
  } else if (limit < 0) {
    reply_error(req, 400, 0, "_timelimit must be a whole number of ms > 0");
  } else if (shape && strcmp(shape, "objects") && strcmp(shape, "arrays")) {
    reply_error(req, 400, 0, "_shape must be arrays or objects");
  } else {
    call.sql = sql;
    call.params = vals;
    call.names = names;
    call.nparams = n;
    call.timeout_ms = (int)limit; /* Only lowers the handle's */
    start(req, REQ_READ, &call,
          must(json_pack("{soso}", "sql", jstr(sql), "params", params)),
          shape && strcmp(shape, "objects") == 0);
    params = NULL;
  }
  json_decref(params);
  for (i = 0; i < n; i++) {
    free((char *)names[i]);
  }
  free(names);
  free(vals);
  evhttp_clear_headers(&args);
}

/*
** The value of JSON v as a parameter, into *out; text and blob bytes point
** into v, or (a blob) into *buf, which the caller frees.  NULL if it has
** one, else the error.
*/
static const char *json_param(json_t *v, sqlq_value *out, unsigned char **buf) {
  switch (json_typeof(v)) {
  case JSON_INTEGER:
    *out = sqlq_int(json_integer_value(v));
    return NULL;
  case JSON_REAL:
    *out = sqlq_real(json_real_value(v));
    return NULL;
  case JSON_STRING:
    *out = sqlq_blob(json_string_value(v), (int64_t)json_string_length(v));
    out->type = SQLITE_TEXT;
    return NULL;
  case JSON_TRUE:
  case JSON_FALSE:
    *out = sqlq_int(json_is_true(v));
    return NULL;
  case JSON_NULL:
    *out = sqlq_null();
    return NULL;
  default:
    break;
  }
  {
    /* {"$base64":true,"encoded":".."}: a blob */
    json_t *enc = json_object_get(v, "encoded");
    const char *s = json_string_value(enc);
    size_t n = s ? strlen(s) : 0, i, k = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (!json_is_true(json_object_get(v, "$base64")) || s == NULL ||
        json_object_size(v) != 2) {
      return "a parameter must be a number, a string, true, false, null or "
             "{\"$base64\":true,\"encoded\":\"...\"}";
    }
    *buf = malloc(n / 4 * 3 + 3);
    if (*buf == NULL) must(NULL);
    /* Strict: whole groups of 4, and "=" only as the last one or two */
    if (n % 4 != 0) return "encoded is not base64";
    for (i = 0; i < n; i++) {
      const char *at = s[i] ? strchr(B64, s[i]) : NULL;
      if (s[i] == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '=')) {
        break;
      }
      if (at == NULL) return "encoded is not base64";
      acc = acc << 6 | (uint32_t)(at - B64);
      if ((bits += 6) >= 8) (*buf)[k++] = (unsigned char)(acc >> (bits -= 8));
    }
    *out = sqlq_blob(*buf, (int64_t)k);
    return NULL;
  }
}

/* A write: POST /NAME.json with {"sql":..,"params":..}. */
static void do_write(struct evhttp_request *req) {
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in), n = 0, i;
  json_error_t jerr;
  json_t *body =
      json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
  json_t *sql = json_object_get(body, "sql"), *params;
  sqlq_value *vals = NULL;
  const char **names = NULL;
  unsigned char **bufs = NULL;
  const char *err = NULL;
  sqlq_call call = {.kind = SQLQ_WRITE};
  if (body == NULL) {
    char msg[256];
    snprintf(msg, sizeof(msg), "the body is not JSON: %s", jerr.text);
    reply_error(req, 400, 0, msg);
    return;
  }
  params = json_object_get(body, "params");
  if (!json_is_string(sql)) {
    err = "the body must be {\"sql\": \"...\", \"params\": {...} or [...]}";
  } else if (params && !json_is_object(params) && !json_is_array(params) &&
             !json_is_null(params)) {
    err = "params must be an object (by name) or an array (by position)";
  } else {
    n = json_is_object(params)  ? json_object_size(params)
        : json_is_array(params) ? json_array_size(params)
                                : 0;
    vals = calloc(n + 1, sizeof(*vals));
    bufs = calloc(n + 1, sizeof(*bufs));
    names = json_is_object(params) ? calloc(n + 1, sizeof(*names)) : NULL;
    if (vals == NULL || bufs == NULL || (json_is_object(params) && !names)) {
      must(NULL);
    }
    if (json_is_array(params)) {
      for (i = 0; i < n && err == NULL; i++) {
        err = json_param(json_array_get(params, i), &vals[i], &bufs[i]);
      }
    } else if (names) {
      const char *key;
      json_t *v;
      i = 0;
      json_object_foreach(params, key, v) {
        /* "p" names :p; a name with its prefix is taken as it is */
        char *name = malloc(strlen(key) + 2);
        if (name == NULL) must(NULL);
        if (key[0] && strchr(":@$", key[0])) {
          strcpy(name, key);
        } else {
          name[0] = ':';
          strcpy(name + 1, key);
        }
        names[i] = name;
        if (err == NULL) err = json_param(v, &vals[i], &bufs[i]);
        i++;
      }
    }
  }
  if (err) {
    reply_error(req, 400, 0, err);
  } else {
    call.sql = json_string_value(sql);
    call.params = vals;
    call.names = names;
    call.nparams = (int)n;
    /* sqlq_submit copies the call */
    start(req, REQ_WRITE, &call,
          must(json_pack("{ss}", "sql", json_string_value(sql))), 0);
  }
  for (i = 0; names && i < n; i++) {
    free((char *)names[i]);
  }
  for (i = 0; bufs && i < n; i++) {
    free(bufs[i]);
  }
  free(names);
  free(bufs);
  free(vals);
  json_decref(body);
}

/*
** GET /-/activity: the requests in flight and the statements running on
** the handle's connections.  sqlq_activity() never queues, so it answers at
** once even when every reader is busy and the queue is full.
*/
static void do_activity(struct evhttp_request *req) {
  sqlq_result *res;
  json_t *o, *conns;
  int rc = sqlq_activity(S.q, &res);
  if (rc != 0) {
    reply_error(req, 500, rc, res ? sqlq_result_error(res) : NULL);
    sqlq_result_free(res);
    return;
  }
  o = must(json_pack("{sbso}", "ok", 1, "requests", requests_json()));
  conns = must(json_object());
  add_rows(conns, res, 1);
  json_object_set(o, "connections", json_object_get(conns, "rows"));
  json_decref(conns);
  sqlq_result_free(res);
  reply(req, 200, o);
}

/* GET /-/stats */
static void do_stats(struct evhttp_request *req) {
  sqlq_stats_t st;
  json_t *o;
  sqlq_stats(S.q, &st);
  o = must(json_pack(
      "{sbsIsIsIsIsIsIsIsIsfsIsIsIsIsf}", "ok", 1, "queued",
      (json_int_t)st.queued, "running", (json_int_t)st.running, "done",
      (json_int_t)st.done, "failed", (json_int_t)st.failed, "timeouts",
      (json_int_t)st.timeouts, "cancels", (json_int_t)st.cancels, "batches",
      (json_int_t)st.batches, "max_batch", (json_int_t)st.max_batch,
      "mean_batch", st.mean_batch, "wait_p50_us", (json_int_t)st.wait_p50_us,
      "wait_p99_us", (json_int_t)st.wait_p99_us, "run_p50_us",
      (json_int_t)st.run_p50_us, "run_p99_us", (json_int_t)st.run_p99_us,
      "loop_worst_stall_ms", S.probe_ms > 0 ? S.worst_stall : -1.0));
  S.worst_stall = 0;
  reply(req, 200, o);
}

/* POST /-/cancel/ID */
static void do_cancel(struct evhttp_request *req, const char *arg) {
  char *end;
  long long id = strtoll(arg, &end, 10);
  int rc = *arg && *end == 0 && id > 0 ? sqlq_cancel(S.q, id) : SQLQ_EINVAL;
  if (rc == 0) {
    reply(req, 200,
          must(json_pack("{sbsI}", "ok", 1, "canceled", (json_int_t)id)));
  } else if (rc == SQLQ_ENOTFOUND) {
    reply_error(req, 404, rc, NULL);
  } else {
    reply_error(req, 400, SQLQ_EINVAL, "the task id must be a number > 0");
  }
}

/* Routes every request: by path, then by method. */
static void on_request(struct evhttp_request *req, void *arg) {
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  enum evhttp_cmd_type m = evhttp_request_get_command(req);
  const char *allow;
  (void)arg;
  if (path == NULL) path = "";
  if (path[0] == '/' && strncmp(path + 1, S.name, S.nname) == 0 &&
      strcmp(path + 1 + S.nname, ".json") == 0) {
    allow = "GET, POST";
    if (m == EVHTTP_REQ_GET) return do_read(req);
    if (m == EVHTTP_REQ_POST) return do_write(req);
  } else if (strcmp(path, "/-/activity") == 0) {
    allow = "GET";
    if (m == EVHTTP_REQ_GET) return do_activity(req);
  } else if (strcmp(path, "/-/stats") == 0) {
    allow = "GET";
    if (m == EVHTTP_REQ_GET) return do_stats(req);
  } else if (strncmp(path, "/-/cancel/", 10) == 0) {
    allow = "POST";
    if (m == EVHTTP_REQ_POST) return do_cancel(req, path + 10);
  } else {
    return reply_error(req, 404, 0, "not found");
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
  reply_error(req, 405, 0, "method not allowed");
}

/* The probe timer: how late it fires is how long the loop was stalled. */
static void on_probe(evutil_socket_t fd, short what, void *arg) {
  double t = now_ms(), late = t - S.probe_at;
  (void)fd;
  (void)what;
  (void)arg;
  if (late > S.worst_stall) S.worst_stall = late;
  S.probe_at = t + S.probe_ms;
}

/* SIGINT, SIGTERM: stop accepting; the loop ends once nothing is in
** flight. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  (void)arg;
  if (S.listener) evhttp_del_accept_socket(S.http, S.listener);
  S.listener = NULL;
  S.quitting = 1;
  maybe_exit();
}

/* The number in option o's argument, or exits. */
static int number_arg(const char *o, const char *s, int min) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < min || v > INT_MAX) {
    fprintf(stderr, "http_server: --%s wants a number >= %d\n", o, min);
    exit(2);
  }
  return (int)v;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"timelimit", required_argument, NULL, 't'},
      {"max-rows", required_argument, NULL, 'm'},
      {"readers", required_argument, NULL, 'r'},
      {"queue", required_argument, NULL, 'q'},
      {"probe-ms", required_argument, NULL, 'p'},
      {NULL, 0, NULL, 0}};
  /* Synchronous NORMAL: safe in WAL mode; a power cut may lose the last
  ** commits, never corrupt the file. */
  sqlq_options opts = {.dispatch = 1, .synchronous = 1};
  sqlq_event att;
  struct event_config *cfg;
  struct event *sigint, *sigterm, *probe = NULL;
  const char *slash, *dot;
  char *name;
  int c, rc, port;

  opts.read_timeout_ms = 1000;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 't':
      opts.read_timeout_ms = number_arg("timelimit", optarg, 1);
      break;
    case 'm':
      opts.max_rows = number_arg("max-rows", optarg, 1);
      break;
    case 'r':
      opts.readers = number_arg("readers", optarg, 1);
      break;
    case 'q':
      opts.queue_capacity = number_arg("queue", optarg, 1);
      break;
    case 'p':
      S.probe_ms = number_arg("probe-ms", optarg, 1);
      break;
    default:
      return 2;
    }
  }
  if (argc - optind != 2) {
    fprintf(stderr,
            "usage: %s [--timelimit MS] [--max-rows N] [--readers N] "
            "[--queue N] [--probe-ms MS] DBPATH PORT\n",
            argv[0]);
    return 2;
  }
  port = number_arg("PORT", argv[optind + 1], 0);
  if (port > 65535) {
    fputs("http_server: PORT must be at most 65535\n", stderr);
    return 2;
  }
  slash = strrchr(argv[optind], '/');
  name = strdup(slash ? slash + 1 : argv[optind]);
  if (name == NULL) must(NULL);
  if ((dot = strrchr(name, '.')) != NULL && dot != name) name[dot - name] = 0;
  S.name = name;
  S.nname = strlen(name);

  rc = sqlq_open(argv[optind], &opts, &S.q);
  if (rc != 0) {
    fprintf(stderr, "http_server: %s: %s\n", argv[optind], sqlq_strerror(rc));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* A client gone: a failed write, not a signal */
  /* EV_CLOSED, to see a client go while its request runs */
  cfg = event_config_new();
  if (cfg) event_config_require_features(cfg, EV_FEATURE_EARLY_CLOSE);
  S.base = cfg ? event_base_new_with_config(cfg) : NULL;
  if (cfg) event_config_free(cfg);
  S.http = S.base ? evhttp_new(S.base) : NULL;
  if (S.http == NULL || sqlq_event_attach(&att, S.base, S.q) != 0) {
    fputs("http_server: libevent: no event base that sees a peer close\n",
          stderr);
    return 1;
  }
  /* Every method reaches on_request, which answers 405 for the wrong one */
  evhttp_set_allowed_methods(
      S.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                  EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                  EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
  evhttp_set_max_body_size(S.http, MAX_BODY);
  evhttp_set_max_headers_size(S.http, MAX_HEADERS);
  evhttp_set_timeout(S.http, 60);
  evhttp_set_gencb(S.http, on_request, NULL);
  S.listener =
      evhttp_bind_socket_with_handle(S.http, "127.0.0.1", (ev_uint16_t)port);
  if (S.listener == NULL) {
    perror("http_server: bind");
    return 1;
  }
  sigint = evsignal_new(S.base, SIGINT, on_signal, NULL);
  sigterm = evsignal_new(S.base, SIGTERM, on_signal, NULL);
  if (!sigint || !sigterm || event_add(sigint, NULL) ||
      event_add(sigterm, NULL)) {
    must(NULL);
  }
  if (S.probe_ms > 0) {
    int ms = (int)S.probe_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    probe = event_new(S.base, -1, EV_PERSIST, on_probe, NULL);
    if (probe == NULL || event_add(probe, &tv) != 0) must(NULL);
    S.probe_at = now_ms() + S.probe_ms;
  }
  {
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    getsockname(evhttp_bound_socket_get_fd(S.listener), (struct sockaddr *)&ss,
                &len);
    printf("listening on 127.0.0.1:%d, database %s\n",
           ntohs(((struct sockaddr_in *)&ss)->sin_port), S.name);
    fflush(stdout);
  }

  event_base_dispatch(S.base);

  if (probe) event_free(probe);
  event_free(sigint);
  event_free(sigterm);
  sqlq_event_detach(&att);
  rc = sqlq_close(S.q); /* Nothing in flight: the loop waited for it */
  evhttp_free(S.http);
  event_base_free(S.base);
  free(name);
  return rc == 0 ? 0 : 1;
}
