/*
** result.c: sqlq results.  A worker builds a result while it steps a
** statement, copying every value into the result's own memory; the user
** reads it with the accessors of sqlq.h.  Cells are an array of nRows x
** nCols; text and blob bytes live in one growing byte buffer and cells refer
** to them by offset, so growing the buffer never invalidates a cell.
*/
#include "sqlq_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct Cell Cell;
struct Cell {
  int type;  /* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB or _NULL */
  int64_t i; /* Integer value, or offset of text/blob bytes in aData */
  double f;  /* Float value */
  int64_t n; /* Bytes of text (without its NUL) or blob */
};

struct sqlq_result {
  int64_t id;        /* Task id */
  int status;        /* 0, SQLite code or SQLQ_E* code */
  char *zErr;        /* Message if status != 0 (malloc) */
  int nCols;         /* Columns */
  int64_t *aColName; /* Offsets of the column names in aData */
  int nRows;         /* Rows */
  int bTruncated;    /* The row cap stopped the read */
  int64_t nChanges;  /* Rows a write changed, triggers' included */
  int64_t iRowid;    /* sqlite3_last_insert_rowid() of a write */
  Cell *aCell;       /* nRows * nCols cells */
  size_t nCellAlloc; /* Allocated cells */
  char *aData;       /* Text and blob bytes, each NUL-terminated */
  size_t nData;      /* Bytes used */
  size_t nDataAlloc; /* Bytes allocated */
};

sqlq_result *sqlq__result_new(int64_t id) {
  sqlq_result *r = calloc(1, sizeof(*r));
  if (r) r->id = id;
  return r;
}

/* Appends n bytes and a NUL to aData; returns their offset, or -1. */
static int64_t addBytes(sqlq_result *r, const void *p, size_t n) {
  int64_t off;
  if (r->nData + n + 1 > r->nDataAlloc) {
    size_t nNew = r->nDataAlloc ? r->nDataAlloc * 2 : 256;
    char *a;
    while (nNew < r->nData + n + 1)
      nNew *= 2;
    a = realloc(r->aData, nNew);
    if (a == NULL) return -1;
    r->aData = a;
    r->nDataAlloc = nNew;
  }
  off = (int64_t)r->nData;
  if (n) memcpy(r->aData + r->nData, p, n);
  r->aData[r->nData + n] = 0;
  r->nData += n + 1;
  return off;
}

int sqlq__result_columns(sqlq_result *r, sqlite3_stmt *pStmt) {
  int i, n = sqlite3_column_count(pStmt);
  if (r->nCols || n == 0) return 0;
  r->aColName = malloc((size_t)n * sizeof(int64_t));
  if (r->aColName == NULL) return 1;
  for (i = 0; i < n; i++) {
    const char *z = sqlite3_column_name(pStmt, i);
    if (z == NULL) z = "";
    r->aColName[i] = addBytes(r, z, strlen(z));
    if (r->aColName[i] < 0) return 1;
  }
  r->nCols = n;
  return 0;
}

int sqlq__result_add_row(sqlq_result *r, sqlite3_stmt *pStmt) {
  int i;
  size_t need;
  if (sqlq__result_columns(r, pStmt)) return 1;
  need = (size_t)(r->nRows + 1) * (size_t)r->nCols;
  if (need > r->nCellAlloc) {
    /* (A first allocation of 1 KiB or more would make malloc consolidate
    ** its free lists on every result: measured, 7% of a small read.) */
    size_t nNew = r->nCellAlloc ? r->nCellAlloc * 2 : 4 * (size_t)r->nCols;
    Cell *a;
    while (nNew < need)
      nNew *= 2;
    a = realloc(r->aCell, nNew * sizeof(Cell));
    if (a == NULL) return 1;
    r->aCell = a;
    r->nCellAlloc = nNew;
  }
  for (i = 0; i < r->nCols; i++) {
    Cell *c = &r->aCell[(size_t)r->nRows * (size_t)r->nCols + (size_t)i];
    c->type = sqlite3_column_type(pStmt, i);
    c->i = 0;
    c->f = 0;
    c->n = 0;
    switch (c->type) {
    case SQLITE_INTEGER:
      c->i = sqlite3_column_int64(pStmt, i);
      break;
    case SQLITE_FLOAT:
      c->f = sqlite3_column_double(pStmt, i);
      break;
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const void *p = c->type == SQLITE_TEXT
                          ? (const void *)sqlite3_column_text(pStmt, i)
                          : sqlite3_column_blob(pStmt, i);
      c->n = sqlite3_column_bytes(pStmt, i);
      c->i = addBytes(r, p, (size_t)c->n);
      if (c->i < 0) return 1;
      break;
    }
    default:
      break;
    }
  }
  r->nRows++;
  return 0;
}

void sqlq__result_fail(sqlq_result *r, int status, const char *zMsg) {
  if (r == NULL) return;
  free(r->zErr);
  r->zErr = NULL;
  r->status = status;
  if (status != 0) {
    const char *z = zMsg ? zMsg : sqlq_strerror(status);
    r->zErr = strdup(z);
  }
}

void sqlq__result_set_truncated(sqlq_result *r) {
  r->bTruncated = 1;
}

void sqlq__result_set_changes(sqlq_result *r, int64_t nChanges,
                              int64_t iRowid) {
  r->nChanges = nChanges;
  r->iRowid = iRowid;
}

void sqlq__result_clear_rows(sqlq_result *r) {
  free(r->aColName);
  free(r->aCell);
  free(r->aData);
  r->aColName = NULL;
  r->aCell = NULL;
  r->aData = NULL;
  r->nCols = r->nRows = 0;
  r->nCellAlloc = r->nData = r->nDataAlloc = 0;
  r->bTruncated = 0;
}

const char *sqlq_libversion(void) {
  return SQLQ_VERSION;
}

int sqlq_libversion_number(void) {
  return SQLQ_VERSION_NUMBER;
}

const char *sqlq_strerror(int code) {
  switch (code) {
#define SQLQ_XX(name, value, message)                                          \
  case value:                                                                  \
    return message;
    SQLQ_ERRNO_MAP(SQLQ_XX)
#undef SQLQ_XX
  default:
    return code >= 0 ? sqlite3_errstr(code) : "unknown error";
  }
}

/* The cell at row, col, or NULL out of range. */
static const Cell *cellAt(const sqlq_result *r, int row, int col) {
  if (r == NULL || row < 0 || col < 0 || row >= r->nRows || col >= r->nCols) {
    return NULL;
  }
  return &r->aCell[(size_t)row * (size_t)r->nCols + (size_t)col];
}

int sqlq_result_status(const sqlq_result *r) {
  return r ? r->status : SQLQ_EINVAL;
}

const char *sqlq_result_error(const sqlq_result *r) {
  if (r == NULL || r->status == 0) return NULL;
  /* The copy of the message can fail only for want of memory. */
  return r->zErr ? r->zErr : sqlq_strerror(r->status);
}

int64_t sqlq_result_id(const sqlq_result *r) {
  return r ? r->id : 0;
}

int sqlq_result_columns(const sqlq_result *r) {
  return r ? r->nCols : 0;
}

const char *sqlq_result_column_name(const sqlq_result *r, int col) {
  if (r == NULL || col < 0 || col >= r->nCols) return NULL;
  return r->aData + r->aColName[col];
}

int sqlq_result_rows(const sqlq_result *r) {
  return r ? r->nRows : 0;
}

int sqlq_result_truncated(const sqlq_result *r) {
  return r ? r->bTruncated : 0;
}

int sqlq_result_type(const sqlq_result *r, int row, int col) {
  const Cell *c = cellAt(r, row, col);
  return c ? c->type : SQLITE_NULL;
}

int64_t sqlq_result_int(const sqlq_result *r, int row, int col) {
  const Cell *c = cellAt(r, row, col);
  if (c == NULL) return 0;
  switch (c->type) {
  case SQLITE_INTEGER:
    return c->i;
  case SQLITE_FLOAT:
    return (int64_t)c->f;
  case SQLITE_TEXT:
    return strtoll(r->aData + c->i, NULL, 10);
  default:
    return 0;
  }
}

double sqlq_result_double(const sqlq_result *r, int row, int col) {
  const Cell *c = cellAt(r, row, col);
  if (c == NULL) return 0;
  switch (c->type) {
  case SQLITE_INTEGER:
    return (double)c->i;
  case SQLITE_FLOAT:
    return c->f;
  case SQLITE_TEXT:
    return strtod(r->aData + c->i, NULL);
  default:
    return 0;
  }
}

const char *sqlq_result_text(const sqlq_result *r, int row, int col) {
  const Cell *c = cellAt(r, row, col);
  if (c == NULL || (c->type != SQLITE_TEXT && c->type != SQLITE_BLOB)) {
    return NULL;
  }
  return r->aData + c->i;
}

const void *sqlq_result_blob(const sqlq_result *r, int row, int col,
                             int64_t *pn) {
  const Cell *c = cellAt(r, row, col);
  if (pn) *pn = 0;
  if (c == NULL || (c->type != SQLITE_TEXT && c->type != SQLITE_BLOB)) {
    return NULL;
  }
  if (pn) *pn = c->n;
  return r->aData + c->i;
}

int64_t sqlq_result_changes(const sqlq_result *r) {
  return r ? r->nChanges : 0;
}

int64_t sqlq_result_last_insert_rowid(const sqlq_result *r) {
  return r ? r->iRowid : 0;
}

void sqlq_result_free(sqlq_result *r) {
  if (r == NULL) return;
  free(r->zErr);
  sqlq__result_clear_rows(r);
  free(r);
}
