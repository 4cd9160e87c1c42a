/*
** http_server.c: an example of sqlq in dispatch mode.  A small HTTP/1.1
** server with one thread and one epoll loop that never blocks: a request
** becomes an sqlq task, and its completion comes back through sqlq_fd() and
** sqlq_dispatch(), whose callback writes the response.
**
**   http_server DBPATH PORT         (PORT 0: any free port, on 127.0.0.1)
**
**   GET /sql?q=SQL    a read: {"columns":[...],"rows":[[...]],"truncated":b}
**   GET /add?v=TEXT   INSERT INTO items(v): {"id":N}
**   GET /count        SELECT count(*) FROM items: {"count":N}
**   GET /quit         stop accepting, finish the requests in flight, exit 0
**
** A failed task answers {"error":MESSAGE,"status":CODE}: 504 for a read
** that ran out of time, 400 otherwise.  Anything else answers 404.  The
** task of a client that disconnects is canceled; its completion still runs,
** and finds the connection gone by the key it was given, not by a pointer.
*/
#include "sqlq.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 4096 /* Connections are indexed by fd, below this */
#define IN_SIZE 16384  /* Request bytes a client may send ahead */

/* A client connection. */
typedef struct Conn {
  int fd;
  uintptr_t key;        /* Names it in completions: serial * MAX_CONNS + fd */
  char in[IN_SIZE + 1]; /* Request bytes read, NUL-terminated */
  size_t nin;
  char *out;         /* The response being sent, or NULL */
  size_t nout, sent; /* Its length, and the bytes of it sent */
  int want_out;      /* Waiting for EPOLLOUT */
  int keep_alive;    /* Keep the connection after this response */
  int64_t task;      /* The task in flight, or 0 */
  const char *field; /* Its one-number answer ("id", "count"), or NULL */
} Conn;

static sqlq *q;
static int ep, lfd, qfd;       /* epoll, listening socket, sqlq_fd() */
static Conn *conns[MAX_CONNS]; /* By fd */
static int nconns;
static uintptr_t serial; /* Connections accepted, for their keys */
static int quitting, exit_code;

static void serve(Conn *c);

/* A stream writing to memory (*p, *n once closed); exits if out of memory. */
static FILE *memstream(char **p, size_t *n) {
  FILE *f = open_memstream(p, n);
  if (f == NULL) {
    perror("http_server");
    exit(1);
  }
  return f;
}

/* Writes s as a JSON string. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      fprintf(f, "\\%c", ch);
    } else if (ch < 0x20) {
      fprintf(f, "\\u%04x", ch);
    } else {
      fputc(ch, f);
    }
  }
  fputc('"', f);
}

/* Writes a cell as JSON: a number, a string, null, or a blob in hex. */
static void json_cell(FILE *f, const sqlq_result *r, int row, int col) {
  const unsigned char *p;
  int64_t i, n;
  double d;
  char num[32];
  switch (sqlq_result_type(r, row, col)) {
  case SQLITE_INTEGER:
    fprintf(f, "%lld", (long long)sqlq_result_int(r, row, col));
    break;
  case SQLITE_FLOAT: /* The shortest of 15 or 17 digits that reads back */
    d = sqlq_result_double(r, row, col);
    snprintf(num, sizeof(num), "%.15g", d);
    if (strtod(num, NULL) != d) snprintf(num, sizeof(num), "%.17g", d);
    fputs(isfinite(d) ? num : "null", f);
    break;
  case SQLITE_TEXT:
    json_str(f, sqlq_result_text(r, row, col));
    break;
  case SQLITE_BLOB:
    p = sqlq_result_blob(r, row, col, &n);
    fputc('"', f);
    for (i = 0; i < n; i++)
      fprintf(f, "%02x", p[i]);
    fputc('"', f);
    break;
  default:
    fputs("null", f);
  }
}

/* Writes the rows of a read as {"columns":[...],"rows":[...],...}. */
static void json_rows(FILE *f, const sqlq_result *r) {
  int row, col, ncol = sqlq_result_columns(r);
  fputs("{\"columns\":[", f);
  for (col = 0; col < ncol; col++) {
    if (col) fputc(',', f);
    json_str(f, sqlq_result_column_name(r, col));
  }
  fputs("],\"rows\":[", f);
  for (row = 0; row < sqlq_result_rows(r); row++) {
    fputs(row ? ",[" : "[", f);
    for (col = 0; col < ncol; col++) {
      if (col) fputc(',', f);
      json_cell(f, r, row, col);
    }
    fputc(']', f);
  }
  fprintf(f, "],\"truncated\":%s}",
          sqlq_result_truncated(r) ? "true" : "false");
}

/* Sets the response of c (code, with the JSON body) for serve() to send. */
static void respond(Conn *c, int code, const char *json) {
  FILE *f = memstream(&c->out, &c->nout);
  fprintf(f,
          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
          "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
          code,
          code == 200   ? "OK"
          : code == 400 ? "Bad Request"
          : code == 404 ? "Not Found"
                        : "Gateway Timeout",
          strlen(json), c->keep_alive && !quitting ? "keep-alive" : "close",
          json);
  fclose(f);
}

/*
** Responds with the outcome of c's task: r, or (r NULL) the status of a task
** that was refused.  An error is {"error":MESSAGE,"status":CODE}: 504 for a
** timeout, else 400.
*/
static void respond_task(Conn *c, int status, const sqlq_result *r) {
  const char *msg = r ? sqlq_result_error(r) : NULL;
  char *json;
  size_t n;
  FILE *f = memstream(&json, &n);
  if (status != 0) {
    fputs("{\"error\":", f);
    json_str(f, msg ? msg : sqlq_strerror(status));
    fprintf(f, ",\"status\":%d}", status);
  } else if (c->field) {
    fprintf(f, "{\"%s\":%lld}", c->field, (long long)sqlq_result_int(r, 0, 0));
  } else {
    json_rows(f, r);
  }
  fclose(f);
  respond(c, status == 0 ? 200 : status == SQLQ_ETIMEOUT ? 504 : 400, json);
  free(json);
}

/* The connection a completion is for, or NULL if it has gone. */
static Conn *conn_of(void *udata) {
  uintptr_t key = (uintptr_t)udata;
  Conn *c = conns[key % MAX_CONNS];
  return c && c->key == key ? c : NULL;
}

/* A task's completion: runs on the loop's thread, in sqlq_dispatch(). */
static void on_done(sqlq_result *r, void *udata) {
  Conn *c = conn_of(udata);
  if (c == NULL) return; /* The client left */
  c->task = 0;
  respond_task(c, sqlq_result_status(r), r);
  serve(c);
}

/* Starts a task for c, or answers at once if it is refused. */
static void submit(Conn *c, sqlq_kind kind, const char *sql,
                   const sqlq_value *param, const char *field) {
  sqlq_call call = {.kind = kind,
                    .sql = sql,
                    .params = param,
                    .nparams = param != NULL,
                    .done = on_done,
                    .udata = (void *)c->key};
  int64_t id = sqlq_submit(q, &call);
  if (id < 0) {
    respond_task(c, (int)id, NULL);
  } else {
    c->task = id;
    c->field = field;
  }
}

/* Closes c.  Its task, if any, is canceled; its completion will find no c. */
static void close_conn(Conn *c) {
  if (c->task) sqlq_cancel(q, c->task); /* ENOTFOUND: it just ended */
  conns[c->fd] = NULL;
  close(c->fd); /* Which also takes it out of the epoll set */
  free(c->out);
  free(c);
  nconns--;
}

/* Stops accepting and closes the idle connections; the others close once
** they have their answer, and then the loop ends. */
static void quit(void) {
  int fd;
  quitting = 1;
  close(lfd);
  lfd = -1;
  for (fd = 0; fd < MAX_CONNS; fd++) {
    if (conns[fd] && conns[fd]->task == 0 && conns[fd]->out == NULL) {
      close_conn(conns[fd]);
    }
  }
}

/* The decoded value of name in a query string (malloc), or NULL. */
static char *query_param(const char *query, const char *name) {
  size_t len = strlen(name);
  const char *s;
  char *v, *d;
  while (query && (strncmp(query, name, len) != 0 || query[len] != '=')) {
    query = strchr(query, '&');
    if (query) query++;
  }
  if (query == NULL) return NULL;
  s = query + len + 1;
  v = d = malloc(strcspn(s, "&") + 1);
  if (v == NULL) return NULL;
  for (; *s && *s != '&'; s++) {
    if (*s == '%' && isxdigit((unsigned char)s[1]) &&
        isxdigit((unsigned char)s[2])) {
      char hex[3] = {s[1], s[2], 0};
      *d++ = (char)strtol(hex, NULL, 16);
      s += 2;
    } else {
      *d++ = *s == '+' ? ' ' : *s;
    }
  }
  *d = 0;
  return v;
}

/* Answers a request, or starts its task. */
static void route(Conn *c, const char *method, char *target) {
  char *query = target ? strchr(target, '?') : NULL, *arg;
  const char *path = target && strcmp(method, "GET") == 0 ? target : "";
  sqlq_value v;
  if (query) *query++ = 0;
  if (strcmp(path, "/sql") == 0) {
    arg = query_param(query, "q"); /* None: sqlq_submit() says EINVAL */
    submit(c, SQLQ_READ, arg, NULL, NULL);
    free(arg);
  } else if (strcmp(path, "/add") == 0) {
    arg = query_param(query, "v");
    v = arg ? sqlq_text(arg) : sqlq_null();
    submit(c, SQLQ_WRITE, "INSERT INTO items(v) VALUES(?) RETURNING id", &v,
           "id");
    free(arg);
  } else if (strcmp(path, "/count") == 0) {
    submit(c, SQLQ_READ, "SELECT count(*) FROM items", NULL, "count");
  } else if (strcmp(path, "/quit") == 0) {
    c->keep_alive = 0;
    respond(c, 200, "{\"quit\":true}");
    quit();
  } else {
    respond(c, 404, "{\"error\":\"not found\"}");
  }
}

/* Takes the next whole request out of c->in and routes it; 0 if none. */
static int next_request(Conn *c) {
  char *end = strstr(c->in, "\r\n\r\n"), *save, *method, *target, *h, *p;
  size_t used;
  if (end == NULL) return 0;
  *end = 0;
  used = (size_t)(end + 4 - c->in);
  method = strtok_r(c->in, " ", &save);
  target = strtok_r(NULL, " ", &save);
  h = strtok_r(NULL, "\r\n", &save); /* The version */
  c->keep_alive = h && strcmp(h, "HTTP/1.1") == 0;
  while ((h = strtok_r(NULL, "\r\n", &save)) != NULL) {
    for (p = h; *p; p++)
      *p = (char)tolower((unsigned char)*p);
    if (strncmp(h, "connection:", 11) == 0) {
      c->keep_alive = strstr(h, "keep-alive") != NULL;
    }
  }
  route(c, method, target); /* The body of a request is ignored */
  c->nin -= used;
  memmove(c->in, c->in + used, c->nin + 1);
  return 1;
}

/* Asks epoll to report c writable, or stops asking. */
static void want_out(Conn *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                           .data.fd = c->fd};
  if (c->want_out == on) return;
  c->want_out = on;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends what it can of c->out: 1 all of it, 0 the rest later, -1 failed. */
static int flush(Conn *c) {
  while (c->sent < c->nout) {
    ssize_t n = send(c->fd, c->out + c->sent, c->nout - c->sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want_out(c, 1);
      return 0;
    }
    if (n < 0) return -1;
    c->sent += (size_t)n;
  }
  free(c->out);
  c->out = NULL;
  c->sent = 0;
  want_out(c, 0);
  return 1;
}

/* Moves c on as far as it can without blocking: sends the response, then
** takes the next request, until a task is in flight or nothing is left. */
static void serve(Conn *c) {
  while (c->task == 0) {
    if (c->out) {
      int rc = flush(c);
      if (rc == 0) return;
      if (rc < 0 || !c->keep_alive || quitting) {
        close_conn(c);
        return;
      }
    }
    if (!next_request(c)) return;
  }
}

/* Reads what c sent and serves it; end of stream closes c, and so does a
** buffer full of requests that serve() could not take. */
static void on_readable(Conn *c) {
  ssize_t n = 0; /* A full buffer counts as the end of the stream */
  if (c->nin < IN_SIZE) n = recv(c->fd, c->in + c->nin, IN_SIZE - c->nin, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    close_conn(c);
    return;
  }
  c->nin += (size_t)n;
  c->in[c->nin] = 0;
  serve(c);
}

/* Accepts the connections waiting on the listening socket. */
static void accept_all(void) {
  int fd;
  while ((fd = accept(lfd, NULL, NULL)) >= 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    Conn *c = NULL;
    if (fd >= MAX_CONNS || fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
        (c = calloc(1, sizeof(*c))) == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->key = ++serial * MAX_CONNS + (uintptr_t)fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    conns[fd] = c;
    nconns++;
  }
}

/* The completion of the CREATE TABLE script: starts serving, or gives up. */
static void on_ready(sqlq_result *r, void *udata) {
  const struct sockaddr_in *addr = udata;
  const char *msg = sqlq_result_error(r);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (sqlq_result_status(r) != 0) {
    fprintf(stderr, "http_server: %s\n",
            msg ? msg : sqlq_strerror(sqlq_result_status(r)));
    quitting = exit_code = 1;
    return;
  }
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("listening on 127.0.0.1:%d\n", ntohs(addr->sin_port));
  fflush(stdout);
}

int main(int argc, char **argv) {
  /* Completions in sqlq_dispatch(); synchronous NORMAL, safe in WAL mode */
  sqlq_options opts = {.dispatch = 1, .synchronous = 1};
  struct sockaddr_in addr = {.sin_family = AF_INET};
  sqlq_call call = {.kind = SQLQ_SCRIPT,
                    .done = on_ready,
                    .udata = &addr,
                    .sql = "CREATE TABLE IF NOT EXISTS items"
                           "(id INTEGER PRIMARY KEY, v TEXT)"};
  socklen_t len = sizeof(addr);
  struct epoll_event ev = {.events = EPOLLIN}, evs[64];
  int one = 1, rc, i, n;

  if (argc != 3) {
    fprintf(stderr, "usage: %s DBPATH PORT\n", argv[0]);
    return 2;
  }
  rc = sqlq_open(argv[1], &opts, &q);
  if (rc != 0) {
    fprintf(stderr, "http_server: %s: %s\n", argv[1], sqlq_strerror(rc));
    return 1;
  }
  addr.sin_port = htons((uint16_t)atoi(argv[2]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  ep = epoll_create1(0);
  if (lfd < 0 || ep < 0 ||
      setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &len) < 0 ||
      listen(lfd, 128) < 0 || fcntl(lfd, F_SETFL, O_NONBLOCK) < 0) {
    perror("http_server");
    sqlq_close(q);
    return 1;
  }

  /* The loop waits for completions from the start; the listening socket
  ** joins it once the table exists. */
  ev.data.fd = qfd = sqlq_fd(q);
  epoll_ctl(ep, EPOLL_CTL_ADD, qfd, &ev);
  if (sqlq_submit(q, &call) < 0) {
    fprintf(stderr, "http_server: the CREATE TABLE task was refused\n");
    quitting = exit_code = 1;
  }

  while (!quitting || nconns > 0) {
    n = epoll_wait(ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) {
      perror("http_server");
      exit_code = 1;
      break;
    }
    for (i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      uint32_t e = evs[i].events;
      if (fd == qfd) {
        sqlq_dispatch(q);
      } else if (fd == lfd) {
        accept_all();
      } else {
        /* A connection closed earlier in this batch is NULL, or a new one
        ** on the same fd, for which a stale event is harmless. */
        if (conns[fd] && (e & EPOLLOUT)) serve(conns[fd]);
        if (conns[fd] && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
          on_readable(conns[fd]);
        }
      }
    }
  }
  /* Runs the completions still due; they find their connections gone. */
  if (sqlq_close(q) != 0) exit_code = 1;
  return exit_code;
}
