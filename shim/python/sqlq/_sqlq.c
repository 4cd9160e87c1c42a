/*
** _sqlq.c: the C core of the sqlq Python package (sqlq/__init__.py is the
** asyncio layer on top).  A Handle owns one sqlq handle in dispatch mode:
** submit() turns a call's Python arguments into an sqlq_call and returns
** the task id; when the handle's fd turns readable, the event loop calls
** dispatch(), and each completion resolves its asyncio future on the loop's
** thread.  A task function (execute_fn, execute_write_fn) runs on a worker
** thread holding the GIL, with a Conn: a connection valid during the call.
**
** Also here: Row (a tuple that is also indexed by column name), Result,
** and the one map from sqlq and SQLite codes to exception classes (the
** sqlite3 module's, and sqlq's own four).
**
** Every object is touched only with the GIL held: completions and task
** functions take it with PyGILState_Ensure().
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "sqlq.h"

#include <math.h>
#include <string.h>

/* The exception classes: sqlite3's, and sqlq's (module attributes). */
static PyObject *ErrDatabase, *ErrOperational, *ErrIntegrity, *ErrProgramming,
    *ErrInterface, *ErrInternal, *ErrData;
static PyObject *ErrTimeout, *ErrQueueFull, *ErrOutcomeUnknown, *ErrClosed,
    *ErrCanceled;

/* ---- Errors -------------------------------------------------------------*/

/* The names of SQLite's extended codes, from the sqlite3 module's
** constants: {2067: "SQLITE_CONSTRAINT_UNIQUE", ...}. */
static PyObject *ExtendedNames;

/* The name of code: "SQLITE_CONSTRAINT_UNIQUE", "SQLQ_ETIMEOUT". */
static const char *codeName(int code) {
  static const char *const azPrimary[] = {
      "SQLITE_OK",        "SQLITE_ERROR",      "SQLITE_INTERNAL",
      "SQLITE_PERM",      "SQLITE_ABORT",      "SQLITE_BUSY",
      "SQLITE_LOCKED",    "SQLITE_NOMEM",      "SQLITE_READONLY",
      "SQLITE_INTERRUPT", "SQLITE_IOERR",      "SQLITE_CORRUPT",
      "SQLITE_NOTFOUND",  "SQLITE_FULL",       "SQLITE_CANTOPEN",
      "SQLITE_PROTOCOL",  "SQLITE_EMPTY",      "SQLITE_SCHEMA",
      "SQLITE_TOOBIG",    "SQLITE_CONSTRAINT", "SQLITE_MISMATCH",
      "SQLITE_MISUSE",    "SQLITE_NOLFS",      "SQLITE_AUTH",
      "SQLITE_FORMAT",    "SQLITE_RANGE",      "SQLITE_NOTADB",
      "SQLITE_NOTICE",    "SQLITE_WARNING"};
  switch (code) {
#define SQLQ_NAME(name, value, message)                                        \
  case value:                                                                  \
    return "SQLQ_" #name;
    SQLQ_ERRNO_MAP(SQLQ_NAME)
#undef SQLQ_NAME
  }
  if (code > 0xff && ExtendedNames) {
    PyObject *k = PyLong_FromLong(code), *n;
    n = k ? PyDict_GetItemWithError(ExtendedNames, k) : NULL;
    Py_XDECREF(k);
    if (n) return PyUnicode_AsUTF8(n);
    PyErr_Clear();
  }
  code &= 0xff;
  if (code >= 0 && code < (int)(sizeof(azPrimary) / sizeof(azPrimary[0]))) {
    return azPrimary[code];
  }
  return "SQLITE_UNKNOWN";
}

/* The class of code's exception: as the sqlite3 module chooses, for
** SQLite's codes. */
static PyObject *errorClass(int code) {
  switch (code) {
  case SQLQ_ETIMEOUT:
    return ErrTimeout;
  case SQLQ_EFULL:
    return ErrQueueFull;
  case SQLQ_EUNKNOWN:
    return ErrOutcomeUnknown;
  case SQLQ_ECLOSED:
    return ErrClosed;
  case SQLQ_ECANCELED:
    return ErrCanceled;
  case SQLQ_ENOMEM:
    return PyExc_MemoryError;
  case SQLQ_EINVAL:
  case SQLQ_EMISUSE:
  case SQLQ_EPARAMS:
  case SQLQ_ETXNCTL:
    return ErrProgramming;
  case SQLQ_EREADONLY:
  case SQLQ_ENOTFOUND:
  case SQLQ_ESYSTEM:
    return ErrOperational;
  }
  switch (code & 0xff) {
  case SQLITE_INTERNAL:
  case SQLITE_NOTFOUND:
    return ErrInternal;
  case SQLITE_NOMEM:
    return PyExc_MemoryError;
  case SQLITE_ERROR:
  case SQLITE_PERM:
  case SQLITE_ABORT:
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
  case SQLITE_READONLY:
  case SQLITE_INTERRUPT:
  case SQLITE_IOERR:
  case SQLITE_FULL:
  case SQLITE_CANTOPEN:
  case SQLITE_PROTOCOL:
  case SQLITE_EMPTY:
  case SQLITE_SCHEMA:
    return ErrOperational;
  case SQLITE_TOOBIG:
    return ErrData;
  case SQLITE_CONSTRAINT:
  case SQLITE_MISMATCH:
    return ErrIntegrity;
  case SQLITE_MISUSE:
  case SQLITE_RANGE:
    return ErrInterface;
  case SQLITE_AUTH: /* sqlq's authorizer: transaction control, a PRAGMA that
                       sets a value, ATTACH ... in a task */
    return ErrProgramming;
  }
  return ErrDatabase;
}

/* A new exception for code and msg (NULL: the code's text), with
** sqlite_errorcode and sqlite_errorname set; NULL with an error set if that
** fails. */
static PyObject *newError(int code, const char *msg) {
  PyObject *cls = errorClass(code), *e;
  if (msg == NULL) msg = sqlq_strerror(code);
  e = PyObject_CallFunction(cls, "s", msg);
  if (e == NULL) return NULL;
  if (cls != PyExc_MemoryError) {
    PyObject *c = PyLong_FromLong(code);
    int rc = c ? PyObject_SetAttrString(e, "sqlite_errorcode", c) : -1;
    Py_XDECREF(c);
    if (rc == 0) {
      PyObject *n = PyUnicode_FromString(codeName(code));
      rc = n ? PyObject_SetAttrString(e, "sqlite_errorname", n) : -1;
      Py_XDECREF(n);
    }
    if (rc != 0) Py_CLEAR(e);
  }
  return e;
}

/* Raises code's exception; returns NULL. */
static PyObject *raiseError(int code, const char *msg) {
  PyObject *e = newError(code, msg);
  if (e) {
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
  }
  return NULL;
}

/* ---- Row ----------------------------------------------------------------*/

/* A row: a tuple of values, also indexed by column name. */
typedef struct {
  PyObject_HEAD PyObject *values; /* tuple */
  PyObject *columns;              /* tuple of str, shared by the rows */
} Row;

static PyTypeObject RowType;

static void Row_dealloc(Row *self) {
  Py_XDECREF(self->values);
  Py_XDECREF(self->columns);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Row_length(Row *self) {
  return PyTuple_GET_SIZE(self->values);
}

static PyObject *Row_item(Row *self, Py_ssize_t i) {
  return PySequence_GetItem(self->values, i);
}

static PyObject *Row_subscript(Row *self, PyObject *key) {
  if (PyUnicode_Check(key)) {
    Py_ssize_t i, n = PyTuple_GET_SIZE(self->columns);
    for (i = 0; i < n; i++) {
      int eq = PyUnicode_Compare(PyTuple_GET_ITEM(self->columns, i), key);
      if (eq == 0) {
        PyObject *v = PyTuple_GET_ITEM(self->values, i);
        Py_INCREF(v);
        return v;
      }
      if (eq == -1 && PyErr_Occurred()) return NULL;
    }
    PyErr_Format(PyExc_IndexError, "no column named %R", key);
    return NULL;
  }
  return PyObject_GetItem(self->values, key);
}

static PyObject *Row_iter(Row *self) {
  return PyObject_GetIter(self->values);
}

static PyObject *Row_richcompare(Row *self, PyObject *other, int op) {
  PyObject *o = PyObject_TypeCheck(other, &RowType) ? ((Row *)other)->values
                : PyTuple_Check(other)              ? other
                                                    : NULL;
  if (o == NULL) Py_RETURN_NOTIMPLEMENTED;
  return PyObject_RichCompare(self->values, o, op);
}

static Py_hash_t Row_hash(Row *self) {
  return PyObject_Hash(self->values);
}

static PyObject *Row_repr(Row *self) {
  return PyUnicode_FromFormat("<sqlq.Row %R>", self->values);
}

static PyObject *Row_keys(Row *self, PyObject *unused) {
  (void)unused;
  return PySequence_List(self->columns);
}

static PyMethodDef Row_methods[] = {
    {"keys", (PyCFunction)Row_keys, METH_NOARGS, "The column names."},
    {NULL, NULL, 0, NULL}};

static PySequenceMethods Row_as_sequence = {
    .sq_length = (lenfunc)Row_length,
    .sq_item = (ssizeargfunc)Row_item,
};

static PyMappingMethods Row_as_mapping = {
    .mp_length = (lenfunc)Row_length,
    .mp_subscript = (binaryfunc)Row_subscript,
};

static PyTypeObject RowType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sqlq.Row",
    .tp_basicsize = sizeof(Row),
    .tp_dealloc = (destructor)Row_dealloc,
    .tp_repr = (reprfunc)Row_repr,
    .tp_as_sequence = &Row_as_sequence,
    .tp_as_mapping = &Row_as_mapping,
    .tp_hash = (hashfunc)Row_hash,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A row: a tuple of its values, also indexed by column name.",
    .tp_richcompare = (richcmpfunc)Row_richcompare,
    .tp_iter = (getiterfunc)Row_iter,
    .tp_methods = Row_methods,
};

/* A new Row of values (stolen) and columns. */
static PyObject *newRow(PyObject *values, PyObject *columns) {
  Row *r = PyObject_New(Row, &RowType);
  if (r == NULL) {
    Py_DECREF(values);
    return NULL;
  }
  r->values = values;
  Py_INCREF(columns);
  r->columns = columns;
  return (PyObject *)r;
}

/* ---- Result -------------------------------------------------------------*/

/* What a statement returned: rows, columns, and what it changed. */
typedef struct {
  PyObject_HEAD PyObject *rows; /* list of Row */
  PyObject *columns;            /* tuple of str */
  PyObject *lastrowid;          /* int, or None for a read */
  Py_ssize_t rowcount;          /* changes, -1 for a read */
  int truncated;                /* the row cap stopped it */
} Result;

static void Result_dealloc(Result *self) {
  Py_XDECREF(self->rows);
  Py_XDECREF(self->columns);
  Py_XDECREF(self->lastrowid);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Result_length(Result *self) {
  return PyList_GET_SIZE(self->rows);
}

static PyObject *Result_item(Result *self, Py_ssize_t i) {
  return PySequence_GetItem(self->rows, i);
}

static PyObject *Result_iter(Result *self) {
  return PyObject_GetIter(self->rows);
}

static PyObject *Result_repr(Result *self) {
  return PyUnicode_FromFormat("<sqlq.Result columns=%R rows=%zd%s>",
                              self->columns, PyList_GET_SIZE(self->rows),
                              self->truncated ? " truncated" : "");
}

static PyObject *Result_get_truncated(Result *self, void *unused) {
  (void)unused;
  return PyBool_FromLong(self->truncated);
}

static PyMemberDef Result_members[] = {
    {"rows", T_OBJECT_EX, offsetof(Result, rows), READONLY, "list of Row"},
    {"columns", T_OBJECT_EX, offsetof(Result, columns), READONLY,
     "tuple of column names"},
    {"lastrowid", T_OBJECT_EX, offsetof(Result, lastrowid), READONLY,
     "the last inserted rowid of a write, None for a read"},
    {"rowcount", T_PYSSIZET, offsetof(Result, rowcount), READONLY,
     "rows changed by a write, -1 for a read"},
    {NULL, 0, 0, 0, NULL}};

static PyGetSetDef Result_getset[] = {
    {"truncated", (getter)Result_get_truncated, NULL,
     "True if the row cap stopped the read", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PySequenceMethods Result_as_sequence = {
    .sq_length = (lenfunc)Result_length,
    .sq_item = (ssizeargfunc)Result_item,
};

static PyTypeObject ResultType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sqlq.Result",
    .tp_basicsize = sizeof(Result),
    .tp_dealloc = (destructor)Result_dealloc,
    .tp_repr = (reprfunc)Result_repr,
    .tp_as_sequence = &Result_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The rows of a statement, its columns and its changes.",
    .tp_iter = (getiterfunc)Result_iter,
    .tp_members = Result_members,
    .tp_getset = Result_getset,
};

/* A new, empty Result: no rows, columns (stolen) or an empty tuple. */
static Result *newResult(PyObject *columns) {
  Result *r = PyObject_New(Result, &ResultType);
  if (r == NULL) {
    Py_XDECREF(columns);
    return NULL;
  }
  r->rows = PyList_New(0);
  r->columns = columns ? columns : PyTuple_New(0);
  r->lastrowid = Py_None;
  Py_INCREF(Py_None);
  r->rowcount = -1;
  r->truncated = 0;
  if (r->rows == NULL || r->columns == NULL) Py_CLEAR(r);
  return r;
}

/* Appends a Row of values (stolen) to r; -1 with an error set. */
static int appendRow(Result *r, PyObject *values) {
  PyObject *row = newRow(values, r->columns);
  int rc = row ? PyList_Append(r->rows, row) : -1;
  Py_XDECREF(row);
  return rc;
}

/* One value as Python: int, float, str (or bytes if not UTF-8), bytes,
** None. */
static PyObject *pyValue(int type, int64_t i, double f, const void *p,
                         int64_t n) {
  switch (type) {
  case SQLITE_INTEGER:
    return PyLong_FromLongLong(i);
  case SQLITE_FLOAT:
    return PyFloat_FromDouble(f);
  case SQLITE_TEXT: {
    PyObject *s = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, NULL);
    if (s || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return s;
    PyErr_Clear(); /* Not UTF-8: its bytes */
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
  }
  case SQLITE_BLOB:
    return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
  default:
    Py_RETURN_NONE;
  }
}

/* The Result of a task's sqlq_result. */
static PyObject *resultOf(const sqlq_result *res, int bWrite) {
  int ncol = sqlq_result_columns(res), nrow = sqlq_result_rows(res), i, j;
  PyObject *columns = PyTuple_New(ncol);
  Result *r;
  if (columns == NULL) return NULL;
  for (j = 0; j < ncol; j++) {
    PyObject *s = PyUnicode_DecodeUTF8(
        sqlq_result_column_name(res, j),
        (Py_ssize_t)strlen(sqlq_result_column_name(res, j)), "replace");
    if (s == NULL) {
      Py_DECREF(columns);
      return NULL;
    }
    PyTuple_SET_ITEM(columns, j, s);
  }
  r = newResult(columns);
  if (r == NULL) return NULL;
  for (i = 0; i < nrow; i++) {
    PyObject *values = PyTuple_New(ncol);
    if (values == NULL) goto fail;
    for (j = 0; j < ncol; j++) {
      int64_t n;
      const void *p = sqlq_result_blob(res, i, j, &n);
      PyObject *v =
          pyValue(sqlq_result_type(res, i, j), sqlq_result_int(res, i, j),
                  sqlq_result_double(res, i, j), p, n);
      if (v == NULL) {
        Py_DECREF(values);
        goto fail;
      }
      PyTuple_SET_ITEM(values, j, v);
    }
    if (appendRow(r, values) != 0) goto fail;
  }
  r->truncated = sqlq_result_truncated(res);
  if (bWrite) {
    r->rowcount = (Py_ssize_t)sqlq_result_changes(res);
    Py_SETREF(r->lastrowid,
              PyLong_FromLongLong(sqlq_result_last_insert_rowid(res)));
    if (r->lastrowid == NULL) goto fail;
  }
  return (PyObject *)r;
fail:
  Py_DECREF(r);
  return NULL;
}

/* ---- Parameters ---------------------------------------------------------*/

/* The values of a call, converted from Python; they point into the Python
** objects, which the caller keeps alive until sqlq_submit() has copied
** them. */
typedef struct {
  sqlq_value *aVal;    /* nRow * nCol values */
  const char **azName; /* nCol names, or NULL: by position */
  Py_buffer *aBuf;     /* nRow * nCol buffers, .obj set for those held */
  PyObject *keep;      /* list: the objects the names point into */
  int nCol, nRow;
} Params;

static void paramsFree(Params *p) {
  int i;
  for (i = 0; p->aBuf && i < p->nRow * p->nCol; i++) {
    if (p->aBuf[i].obj) PyBuffer_Release(&p->aBuf[i]);
  }
  PyMem_Free(p->aVal);
  PyMem_Free(p->azName);
  PyMem_Free(p->aBuf);
  Py_XDECREF(p->keep);
  memset(p, 0, sizeof(*p));
}

/* Converts o, the parameter named by what (an int or a str), into *v. */
static int toValue(PyObject *o, sqlq_value *v, Py_buffer *buf, PyObject *what) {
  if (o == Py_None) {
    *v = sqlq_null();
  } else if (PyLong_Check(o)) { /* And bool */
    long long i = PyLong_AsLongLong(o);
    if (i == -1 && PyErr_Occurred()) return -1;
    *v = sqlq_int(i);
  } else if (PyFloat_Check(o)) {
    *v = sqlq_real(PyFloat_AS_DOUBLE(o));
  } else if (PyUnicode_Check(o)) {
    Py_ssize_t n;
    const char *z = PyUnicode_AsUTF8AndSize(o, &n);
    if (z == NULL) return -1;
    *v = sqlq_blob(z, n);
    v->type = SQLITE_TEXT;
  } else if (PyObject_CheckBuffer(o)) {
    if (PyObject_GetBuffer(o, buf, PyBUF_SIMPLE) != 0) return -1;
    *v = sqlq_blob(buf->buf, buf->len);
  } else {
    PyErr_Format(PyExc_TypeError,
                 "parameter %S: type '%s' is not supported (int, float, str, "
                 "bytes-like, bool or None)",
                 what, Py_TYPE(o)->tp_name);
    return -1;
  }
  return 0;
}

/* Whether o is a mapping of parameters by name (not a sequence). */
static int isNamed(PyObject *o) {
  return PyDict_Check(o) ||
         (!PyTuple_Check(o) && !PyList_Check(o) && PyMapping_Check(o) &&
          PyObject_HasAttrString(o, "keys"));
}

/* The SQL name of key k: ":k", or k if it starts with ':', '@' or '$'.  A
** new str, or NULL with an error set. */
static PyObject *sqlName(PyObject *k) {
  const char *z;
  if (!PyUnicode_Check(k)) {
    PyErr_Format(PyExc_TypeError, "parameter names must be str, not '%s'",
                 Py_TYPE(k)->tp_name);
    return NULL;
  }
  z = PyUnicode_AsUTF8(k);
  if (z == NULL) return NULL;
  if (z[0] == ':' || z[0] == '@' || z[0] == '$') {
    Py_INCREF(k);
    return k;
  }
  return PyUnicode_FromFormat(":%U", k);
}

/*
** Converts rows (a sequence of rows, each a sequence or a mapping; or, with
** single, one row that may be None) into p.  Returns 0, or -1 with an
** error set.
*/
static int paramsFrom(Params *p, PyObject *rows, int single) {
  PyObject *seq = NULL, *keys = NULL, *first;
  int i, j, named;
  memset(p, 0, sizeof(*p));
  if (rows == Py_None || rows == NULL) return 0;
  if (PyUnicode_Check(rows) || PyBytes_Check(rows)) {
    PyErr_SetString(PyExc_TypeError,
                    "params must be a sequence or a mapping, not a string");
    return -1;
  }
  if (single) {
    seq = PyTuple_Pack(1, rows);
  } else {
    seq = PySequence_Fast(rows, "the rows must be a sequence");
  }
  if (seq == NULL) return -1;
  p->nRow = (int)PySequence_Fast_GET_SIZE(seq);
  if (p->nRow == 0) goto done;
  first = PySequence_Fast_GET_ITEM(seq, 0);
  named = isNamed(first);
  p->keep = PyList_New(0);
  if (p->keep == NULL) goto fail;
  if (named) {
    keys = PyMapping_Keys(first);
    if (keys == NULL) goto fail;
    p->nCol = (int)PyList_GET_SIZE(keys);
    p->azName = PyMem_Calloc((size_t)p->nCol + 1, sizeof(char *));
    if (p->azName == NULL) goto nomem;
    for (j = 0; j < p->nCol; j++) {
      PyObject *name = sqlName(PyList_GET_ITEM(keys, j));
      int rc = name ? PyList_Append(p->keep, name) : -1;
      Py_XDECREF(name);
      if (rc != 0 || (p->azName[j] = PyUnicode_AsUTF8(name)) == NULL) {
        goto fail;
      }
    }
  } else {
    Py_ssize_t n = PySequence_Size(first);
    if (n < 0) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError,
                   "params must be a sequence or a mapping, not '%s'",
                   Py_TYPE(first)->tp_name);
      goto fail;
    }
    p->nCol = (int)n;
  }
  p->aVal = PyMem_Calloc((size_t)p->nRow * p->nCol + 1, sizeof(sqlq_value));
  p->aBuf = PyMem_Calloc((size_t)p->nRow * p->nCol + 1, sizeof(Py_buffer));
  if (p->aVal == NULL || p->aBuf == NULL) goto nomem;
  for (i = 0; i < p->nRow; i++) {
    PyObject *row = PySequence_Fast_GET_ITEM(seq, i), *vals;
    if (named != isNamed(row)) {
      PyErr_SetString(PyExc_TypeError,
                      "every row must be a mapping, or every row a sequence");
      goto fail;
    }
    vals = named ? NULL : PySequence_Fast(row, "a row must be a sequence");
    if (!named && vals == NULL) goto fail;
    if (!named && PySequence_Fast_GET_SIZE(vals) != p->nCol) {
      Py_DECREF(vals);
      PyErr_Format(ErrProgramming,
                   "row %d has %zd parameters, the first row %d", i,
                   PySequence_Fast_GET_SIZE(vals), p->nCol);
      goto fail;
    }
    for (j = 0; j < p->nCol; j++) {
      int k = i * p->nCol + j, rc;
      PyObject *v, *what;
      if (named) {
        what = PyList_GET_ITEM(keys, j);
        v = PyObject_GetItem(row, what);
        if (v == NULL) goto fail;
      } else {
        v = PySequence_Fast_GET_ITEM(vals, j);
        Py_INCREF(v);
        what = PyLong_FromLong(j + 1);
        if (what == NULL) {
          Py_DECREF(v);
          Py_DECREF(vals);
          goto fail;
        }
      }
      rc = toValue(v, &p->aVal[k], &p->aBuf[k], what);
      /* A str's UTF-8 lives as long as the str: keep it */
      if (rc == 0 && PyUnicode_Check(v)) rc = PyList_Append(p->keep, v);
      Py_DECREF(v);
      if (!named) Py_DECREF(what);
      if (rc != 0) {
        Py_XDECREF(vals);
        goto fail;
      }
    }
    Py_XDECREF(vals);
  }
done:
  Py_XDECREF(keys);
  Py_DECREF(seq);
  return 0;
nomem:
  PyErr_NoMemory();
fail:
  Py_XDECREF(keys);
  Py_DECREF(seq);
  paramsFree(p);
  return -1;
}

/* Binds the values of row i of p to pStmt (a Conn's statement). */
static int bindRow(sqlite3_stmt *pStmt, const Params *p, int i) {
  int j, rc = SQLITE_OK;
  if (sqlite3_bind_parameter_count(pStmt) != p->nCol) {
    PyErr_Format(ErrProgramming,
                 "wrong number of parameters: the statement has %d, the call "
                 "gave %d",
                 sqlite3_bind_parameter_count(pStmt), p->nCol);
    return -1;
  }
  for (j = 0; j < p->nCol && rc == SQLITE_OK; j++) {
    const sqlq_value *v = &p->aVal[i * p->nCol + j];
    int k = j + 1;
    if (p->azName) {
      k = sqlite3_bind_parameter_index(pStmt, p->azName[j]);
      if (k == 0) {
        PyErr_Format(ErrProgramming, "the statement has no parameter named %s",
                     p->azName[j]);
        return -1;
      }
    }
    switch (v->type) {
    case SQLITE_INTEGER:
      rc = sqlite3_bind_int64(pStmt, k, v->i);
      break;
    case SQLITE_FLOAT:
      rc = sqlite3_bind_double(pStmt, k, v->f);
      break;
    case SQLITE_TEXT:
      rc = sqlite3_bind_text64(pStmt, k, v->p, (sqlite3_uint64)v->n,
                               SQLITE_STATIC, SQLITE_UTF8);
      break;
    case SQLITE_BLOB:
      rc = sqlite3_bind_blob64(pStmt, k, v->p, (sqlite3_uint64)v->n,
                               SQLITE_STATIC);
      break;
    default:
      rc = sqlite3_bind_null(pStmt, k);
    }
  }
  if (rc != SQLITE_OK) {
    raiseError(rc, sqlite3_errmsg(sqlite3_db_handle(pStmt)));
    return -1;
  }
  return 0;
}

/* ---- Conn: the connection of a task function ----------------------------*/

typedef struct {
  PyObject_HEAD sqlite3 *db; /* NULL once the function has returned */
} Conn;

static PyTypeObject ConnType;

/* The Result of running sql over the rows of params on c's connection. */
static PyObject *connRun(Conn *c, PyObject *sql, PyObject *params, int many) {
  sqlite3_stmt *pStmt = NULL;
  const char *zSql, *zTail;
  Params p;
  Result *r = NULL;
  int rc, i, j, ncol;
  if (c->db == NULL) {
    PyErr_SetString(ErrProgramming,
                    "this connection was valid only during the function");
    return NULL;
  }
  zSql = PyUnicode_AsUTF8(sql);
  if (zSql == NULL) return NULL;
  if (paramsFrom(&p, params, !many) != 0) return NULL;
  rc = sqlite3_prepare_v2(c->db, zSql, -1, &pStmt, &zTail);
  if (rc != SQLITE_OK || pStmt == NULL) {
    if (rc == SQLITE_OK) {
      PyErr_SetString(ErrProgramming, "no statement in the SQL");
    } else {
      raiseError(sqlite3_extended_errcode(c->db), sqlite3_errmsg(c->db));
    }
    goto out;
  }
  ncol = sqlite3_column_count(pStmt);
  {
    PyObject *columns = PyTuple_New(ncol);
    if (columns == NULL) goto out;
    for (j = 0; j < ncol; j++) {
      PyObject *s = PyUnicode_FromString(sqlite3_column_name(pStmt, j));
      if (s == NULL) {
        Py_DECREF(columns);
        goto out;
      }
      PyTuple_SET_ITEM(columns, j, s);
    }
    r = newResult(columns);
    if (r == NULL) goto out;
  }
  r->rowcount = 0;
  for (i = 0; i < (p.nRow ? p.nRow : 1); i++) {
    if (bindRow(pStmt, &p, i) != 0) goto fail;
    for (;;) {
      PyObject *values;
      Py_BEGIN_ALLOW_THREADS rc = sqlite3_step(pStmt);
      Py_END_ALLOW_THREADS if (rc != SQLITE_ROW) break;
      values = PyTuple_New(ncol);
      if (values == NULL) goto fail;
      for (j = 0; j < ncol; j++) {
        PyObject *v = pyValue(
            sqlite3_column_type(pStmt, j), sqlite3_column_int64(pStmt, j),
            sqlite3_column_double(pStmt, j), sqlite3_column_blob(pStmt, j),
            sqlite3_column_bytes(pStmt, j));
        if (v == NULL) {
          Py_DECREF(values);
          goto fail;
        }
        PyTuple_SET_ITEM(values, j, v);
      }
      if (appendRow(r, values) != 0) goto fail;
    }
    if (rc != SQLITE_DONE) {
      raiseError(sqlite3_extended_errcode(c->db), sqlite3_errmsg(c->db));
      goto fail;
    }
    r->rowcount += sqlite3_changes(c->db);
    sqlite3_reset(pStmt);
  }
  if (!sqlite3_stmt_readonly(pStmt)) {
    Py_SETREF(r->lastrowid,
              PyLong_FromLongLong(sqlite3_last_insert_rowid(c->db)));
    if (r->lastrowid == NULL) goto fail;
  } else {
    r->rowcount = -1;
  }
  goto out;
fail:
  Py_CLEAR(r);
out:
  sqlite3_finalize(pStmt);
  paramsFree(&p);
  return (PyObject *)r;
}

static PyObject *Conn_execute(Conn *c, PyObject *args) {
  PyObject *sql, *params = Py_None;
  if (!PyArg_ParseTuple(args, "U|O:execute", &sql, &params)) return NULL;
  return connRun(c, sql, params, 0);
}

static PyObject *Conn_executemany(Conn *c, PyObject *args) {
  PyObject *sql, *rows;
  if (!PyArg_ParseTuple(args, "UO:executemany", &sql, &rows)) return NULL;
  return connRun(c, sql, rows, 1);
}

static PyObject *Conn_fetchall(Conn *c, PyObject *args) {
  PyObject *r = Conn_execute(c, args), *rows;
  if (r == NULL) return NULL;
  rows = ((Result *)r)->rows;
  Py_INCREF(rows);
  Py_DECREF(r);
  return rows;
}

static PyObject *Conn_fetchone(Conn *c, PyObject *args) {
  PyObject *r = Conn_execute(c, args), *row;
  if (r == NULL) return NULL;
  row = PyList_GET_SIZE(((Result *)r)->rows)
            ? PyList_GET_ITEM(((Result *)r)->rows, 0)
            : Py_None;
  Py_INCREF(row);
  Py_DECREF(r);
  return row;
}

static PyMethodDef Conn_methods[] = {
    {"execute", (PyCFunction)Conn_execute, METH_VARARGS,
     "execute(sql, params=None) -> Result"},
    {"executemany", (PyCFunction)Conn_executemany, METH_VARARGS,
     "executemany(sql, rows) -> Result"},
    {"fetchall", (PyCFunction)Conn_fetchall, METH_VARARGS,
     "fetchall(sql, params=None) -> list of Row"},
    {"fetchone", (PyCFunction)Conn_fetchone, METH_VARARGS,
     "fetchone(sql, params=None) -> Row or None"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ConnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sqlq.Conn",
    .tp_basicsize = sizeof(Conn),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The connection a task function runs on, during the call.",
    .tp_methods = Conn_methods,
};

/* ---- Handle -------------------------------------------------------------*/

/* A task in flight: what its completion needs. */
typedef struct Pend Pend;
typedef struct Handle Handle;
struct Pend {
  Handle *h;        /* Its handle, which outlives it (close waits) */
  PyObject *future; /* Resolved on the loop's thread */
  PyObject *fn;     /* READ_FN, WRITE_FN: the function, or NULL */
  PyObject *value;  /* What fn returned */
  PyObject *exc;    /* What fn raised */
  int bWrite;       /* A write: rowcount and lastrowid */
  int64_t id;
  Pend *prev, *next; /* In the handle's list (for cancel_all) */
};

struct Handle {
  PyObject_HEAD sqlq *q;
  Pend *pending;         /* Tasks in flight */
  PyObject *weakreflist; /* For the package's set of open handles */
  int bAbandoned;        /* At exit: completions leave futures alone */
};

static void pendFree(Pend *p) {
  Py_XDECREF(p->future);
  Py_XDECREF(p->fn);
  Py_XDECREF(p->value);
  Py_XDECREF(p->exc);
  PyMem_Free(p);
}

/* The function of a READ_FN or WRITE_FN task, on a worker thread. */
static int runFn(sqlite3 *db, void *arg) {
  Pend *p = arg;
  PyGILState_STATE g = PyGILState_Ensure();
  Conn *c = PyObject_New(Conn, &ConnType);
  PyObject *v = NULL;
  int rc = SQLITE_OK;
  if (c) {
    c->db = db;
    v = PyObject_CallOneArg(p->fn, (PyObject *)c);
    c->db = NULL;
    Py_DECREF(c);
  }
  if (v) {
    Py_XSETREF(p->value, v);
  } else {
    /* Its exception, raised by the await; the task fails (a write rolls
    ** back) with the SQLite code it carries, if any */
    PyObject *type, *e, *tb, *code;
    PyErr_Fetch(&type, &e, &tb);
    PyErr_NormalizeException(&type, &e, &tb);
    if (e && tb) PyException_SetTraceback(e, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    Py_XSETREF(p->exc, e);
    rc = SQLITE_ERROR;
    code = e ? PyObject_GetAttrString(e, "sqlite_errorcode") : NULL;
    if (code && PyLong_Check(code)) {
      long l = PyLong_AsLong(code);
      if (l > 0) rc = (int)l;
    }
    Py_XDECREF(code);
    PyErr_Clear();
  }
  PyGILState_Release(g);
  return rc;
}

/* A completion: on the loop's thread in dispatch(), or in close(). */
static void onDone(sqlq_result *res, void *udata) {
  Pend *p = udata;
  PyGILState_STATE g = PyGILState_Ensure();
  int status = sqlq_result_status(res);
  PyObject *v = NULL, *e = NULL, *done, *rc;
  if (p->h->pending == p) p->h->pending = p->next;
  if (p->prev) p->prev->next = p->next;
  if (p->next) p->next->prev = p->prev;
  if (status == 0) {
    if (p->fn) {
      v = p->value ? p->value : Py_None;
      Py_INCREF(v);
    } else {
      v = resultOf(res, p->bWrite);
    }
  } else if (p->exc && status != SQLQ_ETIMEOUT && status != SQLQ_ECANCELED) {
    e = p->exc;
    Py_INCREF(e);
  } else {
    e = newError(status, sqlq_result_error(res));
  }
  if (v == NULL && e == NULL) { /* Converting failed: that error */
    PyObject *type, *tb;
    PyErr_Fetch(&type, &e, &tb);
    PyErr_NormalizeException(&type, &e, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
  }
  /* At exit the futures' loop is gone: nobody awaits them */
  done = p->h->bAbandoned ? Py_NewRef(Py_True)
                          : PyObject_CallMethod(p->future, "done", NULL);
  if (done == Py_False) {
    /* "(O)": a tuple v is one argument, not the argument list */
    rc = v ? PyObject_CallMethod(p->future, "set_result", "(O)", v)
           : PyObject_CallMethod(p->future, "set_exception", "(O)", e);
    if (rc == NULL) PyErr_WriteUnraisable(p->future);
    Py_XDECREF(rc);
  } else if (done == NULL) {
    PyErr_WriteUnraisable(p->future);
  }
  Py_XDECREF(done);
  Py_XDECREF(v);
  Py_XDECREF(e);
  pendFree(p);
  PyGILState_Release(g);
}

static int Handle_init(Handle *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path",
                           "readers",
                           "read_timeout_ms",
                           "max_rows",
                           "queue_capacity",
                           "synchronous",
                           "batch_max",
                           "batch_wait_us",
                           "write_timeout_ms",
                           "busy_timeout_ms",
                           "read_connections",
                           NULL};
  const char *path;
  sqlq_options o = {.dispatch = 1};
  int rc;
  if (!PyArg_ParseTupleAndKeywords(
          args, kw, "s|iiiiiiiiii:Handle", kwlist, &path, &o.readers,
          &o.read_timeout_ms, &o.max_rows, &o.queue_capacity, &o.synchronous,
          &o.batch_max, &o.batch_wait_us, &o.write_timeout_ms,
          &o.busy_timeout_ms, &o.read_connections)) {
    return -1;
  }
  if (self->q) {
    PyErr_SetString(ErrProgramming, "the handle is already open");
    return -1;
  }
  Py_BEGIN_ALLOW_THREADS rc = sqlq_open(path, &o, &self->q);
  Py_END_ALLOW_THREADS if (rc != 0) {
    raiseError(rc, NULL);
    return -1;
  }
  return 0;
}

/* Closes the handle: waits for its tasks (those left complete here). */
static PyObject *Handle_close(Handle *self, PyObject *unused) {
  sqlq *q = self->q;
  int rc;
  (void)unused;
  if (q == NULL) Py_RETURN_NONE;
  self->q = NULL; /* New calls fail with ClosedError from now on */
  Py_BEGIN_ALLOW_THREADS rc = sqlq_close(q);
  Py_END_ALLOW_THREADS if (rc != 0) return raiseError(rc, NULL);
  Py_RETURN_NONE;
}

static void Handle_dealloc(Handle *self) {
  if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
  if (self->q) {
    PyObject *r = Handle_close(self, NULL);
    if (r == NULL) PyErr_WriteUnraisable((PyObject *)self);
    Py_XDECREF(r);
  }
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *closedError(void) {
  return raiseError(SQLQ_ECLOSED, NULL);
}

/*
** submit(future, kind, sql, params, fn, timeout_ms, max_rows, flags):
** starts a task whose completion resolves future; returns its id.
*/
static PyObject *Handle_submit(Handle *self, PyObject *args) {
  PyObject *future, *sql, *params, *fn;
  int kind, timeout_ms, max_rows, flags, many;
  sqlq_call call = {0};
  Params p;
  Pend *pend;
  int64_t id;
  if (!PyArg_ParseTuple(args, "OiOOOiii:submit", &future, &kind, &sql, &params,
                        &fn, &timeout_ms, &max_rows, &flags)) {
    return NULL;
  }
  if (self->q == NULL) return closedError();
  many = kind == SQLQ_WRITE_MANY;
  if (sql != Py_None) {
    if (!PyUnicode_Check(sql)) {
      return PyErr_Format(PyExc_TypeError, "sql must be str, not '%s'",
                          Py_TYPE(sql)->tp_name);
    }
    Py_ssize_t n;
    call.sql = PyUnicode_AsUTF8AndSize(sql, &n);
    if (call.sql == NULL) return NULL;
    if (strlen(call.sql) != (size_t)n) {
      PyErr_SetString(ErrProgramming, "the SQL contains a NUL character");
      return NULL;
    }
  }
  if (paramsFrom(&p, params, !many) != 0) return NULL;
  pend = PyMem_Calloc(1, sizeof(*pend));
  if (pend == NULL) {
    paramsFree(&p);
    return PyErr_NoMemory();
  }
  Py_INCREF(future);
  pend->future = future;
  pend->h = self;
  if (fn != Py_None) {
    Py_INCREF(fn);
    pend->fn = fn;
    call.fn = runFn;
    call.arg = pend;
  }
  pend->bWrite = kind != SQLQ_READ && kind != SQLQ_READ_FN;
  call.kind = (sqlq_kind)kind;
  call.params = p.aVal;
  call.names = p.azName;
  call.nparams = p.nCol;
  call.nrows = many ? p.nRow : 0;
  call.flags = flags;
  call.timeout_ms = timeout_ms;
  call.max_rows = max_rows;
  call.done = onDone;
  call.udata = pend;
  id = sqlq_submit(self->q, &call); /* Never blocks */
  paramsFree(&p);
  if (id < 0) {
    pendFree(pend);
    return raiseError((int)id, NULL);
  }
  pend->id = id;
  pend->next = self->pending;
  if (self->pending) self->pending->prev = pend;
  self->pending = pend;
  return PyLong_FromLongLong(id);
}

/* dispatch(): runs the completions waiting; returns how many. */
static PyObject *Handle_dispatch(Handle *self, PyObject *unused) {
  int n;
  (void)unused;
  if (self->q == NULL) return PyLong_FromLong(0);
  n = sqlq_dispatch(self->q);
  if (n < 0) return raiseError(n, NULL);
  return PyLong_FromLong(n);
}

/* cancel(id): True if the task was queued or running. */
static PyObject *Handle_cancel(Handle *self, PyObject *arg) {
  long long id = PyLong_AsLongLong(arg);
  int rc;
  if (id == -1 && PyErr_Occurred()) return NULL;
  if (self->q == NULL) Py_RETURN_FALSE;
  rc = sqlq_cancel(self->q, id);
  if (rc == SQLQ_ENOTFOUND) Py_RETURN_FALSE;
  if (rc != 0) return raiseError(rc, NULL);
  Py_RETURN_TRUE;
}

/*
** cancel_all(abandon=False): cancels every task in flight; returns how
** many.  abandon: their completions will not touch their futures (at exit,
** when their loop is gone).
*/
static PyObject *Handle_cancel_all(Handle *self, PyObject *args) {
  Pend *p;
  long n = 0;
  int abandon = 0;
  if (!PyArg_ParseTuple(args, "|p:cancel_all", &abandon)) return NULL;
  if (abandon) self->bAbandoned = 1;
  for (p = self->pending; p && self->q; p = p->next) {
    n += sqlq_cancel(self->q, p->id) == 0;
  }
  return PyLong_FromLong(n);
}

static PyObject *Handle_fileno(Handle *self, PyObject *unused) {
  (void)unused;
  if (self->q == NULL) return closedError();
  return PyLong_FromLong(sqlq_fd(self->q));
}

static PyObject *Handle_stats(Handle *self, PyObject *unused) {
  sqlq_stats_t st;
  (void)unused;
  if (self->q == NULL) return closedError();
  sqlq_stats(self->q, &st);
  return Py_BuildValue(
      "{sLsLsLsLsLsLsLsLsLsdsLsLsLsL}", "queued", (long long)st.queued,
      "running", (long long)st.running, "done", (long long)st.done, "failed",
      (long long)st.failed, "timeouts", (long long)st.timeouts, "cancels",
      (long long)st.cancels, "batches", (long long)st.batches, "batched",
      (long long)st.batched, "max_batch", (long long)st.max_batch, "mean_batch",
      st.mean_batch, "wait_p50_us", (long long)st.wait_p50_us, "wait_p99_us",
      (long long)st.wait_p99_us, "run_p50_us", (long long)st.run_p50_us,
      "run_p99_us", (long long)st.run_p99_us);
}

static PyObject *Handle_activity(Handle *self, PyObject *unused) {
  sqlq_result *res;
  PyObject *list, *r;
  int rc, i, j;
  (void)unused;
  if (self->q == NULL) return closedError();
  Py_BEGIN_ALLOW_THREADS rc = sqlq_activity(self->q, &res);
  Py_END_ALLOW_THREADS if (rc != 0) {
    r = raiseError(rc, res ? sqlq_result_error(res) : NULL);
    sqlq_result_free(res);
    return r;
  }
  r = resultOf(res, 0);
  sqlq_result_free(res);
  if (r == NULL) return NULL;
  list = PyList_New(0);
  for (i = 0; list && i < PyList_GET_SIZE(((Result *)r)->rows); i++) {
    Row *row = (Row *)PyList_GET_ITEM(((Result *)r)->rows, i);
    PyObject *d = PyDict_New();
    for (j = 0; d && j < PyTuple_GET_SIZE(row->columns); j++) {
      if (PyDict_SetItem(d, PyTuple_GET_ITEM(row->columns, j),
                         PyTuple_GET_ITEM(row->values, j)) != 0) {
        Py_CLEAR(d);
      }
    }
    if (d == NULL || PyList_Append(list, d) != 0) Py_CLEAR(list);
    Py_XDECREF(d);
  }
  Py_DECREF(r);
  return list;
}

static PyObject *Handle_get_closed(Handle *self, void *unused) {
  (void)unused;
  return PyBool_FromLong(self->q == NULL);
}

static PyMethodDef Handle_methods[] = {
    {"submit", (PyCFunction)Handle_submit, METH_VARARGS,
     "submit(future, kind, sql, params, fn, timeout_ms, max_rows, flags) -> "
     "task id"},
    {"dispatch", (PyCFunction)Handle_dispatch, METH_NOARGS,
     "Runs the completions waiting, on this thread (the loop's)."},
    {"cancel", (PyCFunction)Handle_cancel, METH_O,
     "cancel(id) -> True if it was queued or running"},
    {"cancel_all", (PyCFunction)Handle_cancel_all, METH_VARARGS,
     "cancel_all(abandon=False): cancels every task in flight."},
    {"close", (PyCFunction)Handle_close, METH_NOARGS,
     "Waits for the tasks and closes; completions left run here."},
    {"fileno", (PyCFunction)Handle_fileno, METH_NOARGS,
     "The fd that turns readable when completions wait."},
    {"stats", (PyCFunction)Handle_stats, METH_NOARGS, "sqlq_stats() as a dict"},
    {"activity", (PyCFunction)Handle_activity, METH_NOARGS,
     "sqlq_activity() as a list of dicts"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Handle_getset[] = {
    {"closed", (getter)Handle_get_closed, NULL, "True once closed", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject HandleType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sqlq._sqlq.Handle",
    .tp_basicsize = sizeof(Handle),
    .tp_weaklistoffset = offsetof(Handle, weakreflist),
    .tp_dealloc = (destructor)Handle_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An sqlq handle in dispatch mode (the asyncio layer's core).",
    .tp_methods = Handle_methods,
    .tp_getset = Handle_getset,
    .tp_init = (initproc)Handle_init,
    .tp_new = PyType_GenericNew,
};

/* ---- The module ---------------------------------------------------------*/

/* Fills ExtendedNames from the sqlite3 module's SQLITE_<PRIMARY>_<WHAT>
** constants (the authorizer's SQLITE_READ and the like are not errors). */
static int extendedNames(PyObject *sqlite3m) {
  PyObject *names = PyObject_Dir(sqlite3m);
  Py_ssize_t i;
  int c;
  ExtendedNames = PyDict_New();
  if (names == NULL || ExtendedNames == NULL) {
    Py_XDECREF(names);
    return -1;
  }
  for (i = 0; i < PyList_GET_SIZE(names); i++) {
    PyObject *name = PyList_GET_ITEM(names, i), *v;
    const char *z = PyUnicode_AsUTF8(name);
    long code;
    if (z == NULL) goto fail;
    for (c = 1; c <= SQLITE_WARNING; c++) { /* The primary it extends */
      const char *zp = codeName(c);
      size_t n = strlen(zp);
      if (strncmp(z, zp, n) == 0 && z[n] == '_') break;
    }
    if (c > SQLITE_WARNING) continue;
    v = PyObject_GetAttr(sqlite3m, name);
    code = v && PyLong_Check(v) ? PyLong_AsLong(v) : -1;
    if (code > 0xff && (code & 0xff) == c &&
        PyDict_SetItem(ExtendedNames, v, name) != 0) {
      Py_XDECREF(v);
      goto fail;
    }
    Py_XDECREF(v);
    PyErr_Clear();
  }
  Py_DECREF(names);
  return 0;
fail:
  Py_DECREF(names);
  return -1;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sqlq",
                                    "The C core of the sqlq package.", -1,
                                    NULL};

/* A new exception class name (sqlq.NAME) with bases. */
static PyObject *newClass(PyObject *m, const char *name, PyObject *bases,
                          const char *doc) {
  char full[64];
  PyObject *c;
  snprintf(full, sizeof(full), "sqlq.%s", name);
  c = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
  Py_DECREF(bases);
  if (c && PyModule_AddObjectRef(m, name, c) != 0) Py_CLEAR(c);
  return c;
}

PyMODINIT_FUNC PyInit__sqlq(void) {
  PyObject *m, *sqlite3m;
  if (PyType_Ready(&RowType) < 0 || PyType_Ready(&ResultType) < 0 ||
      PyType_Ready(&ConnType) < 0 || PyType_Ready(&HandleType) < 0) {
    return NULL;
  }
  m = PyModule_Create(&module);
  sqlite3m = m ? PyImport_ImportModule("sqlite3") : NULL;
  if (sqlite3m == NULL) goto fail;
#define GET(var, name)                                                         \
  if ((var = PyObject_GetAttrString(sqlite3m, name)) == NULL) goto fail;
  GET(ErrDatabase, "DatabaseError");
  GET(ErrOperational, "OperationalError");
  GET(ErrIntegrity, "IntegrityError");
  GET(ErrProgramming, "ProgrammingError");
  GET(ErrInterface, "InterfaceError");
  GET(ErrInternal, "InternalError");
  GET(ErrData, "DataError");
#undef GET
  if (extendedNames(sqlite3m) != 0) goto fail;
  Py_CLEAR(sqlite3m);
  if (!(ErrTimeout =
            newClass(m, "TimeoutError",
                     PyTuple_Pack(2, ErrOperational, PyExc_TimeoutError),
                     "A task ran out of time (its time limit, or its queue "
                     "deadline).")) ||
      !(ErrQueueFull =
            newClass(m, "QueueFullError", PyTuple_Pack(1, ErrOperational),
                     "The queue is full: try again later.")) ||
      !(ErrOutcomeUnknown = newClass(
            m, "OutcomeUnknownError", PyTuple_Pack(1, ErrOperational),
            "A write whose COMMIT failed in a way that leaves its outcome "
            "unknown.")) ||
      !(ErrClosed = newClass(m, "ClosedError", PyTuple_Pack(1, ErrProgramming),
                             "The database is closed.")) ||
      !(ErrCanceled =
            newClass(m, "CanceledError", PyTuple_Pack(1, ErrOperational),
                     "The task was canceled, not by its awaiting task."))) {
    goto fail;
  }
  if (PyModule_AddObjectRef(m, "Handle", (PyObject *)&HandleType) ||
      PyModule_AddObjectRef(m, "Row", (PyObject *)&RowType) ||
      PyModule_AddObjectRef(m, "Result", (PyObject *)&ResultType) ||
      PyModule_AddObjectRef(m, "Conn", (PyObject *)&ConnType) ||
      PyModule_AddStringConstant(m, "sqlq_version", sqlq_libversion()) ||
      PyModule_AddIntConstant(m, "READ", SQLQ_READ) ||
      PyModule_AddIntConstant(m, "READ_FN", SQLQ_READ_FN) ||
      PyModule_AddIntConstant(m, "WRITE", SQLQ_WRITE) ||
      PyModule_AddIntConstant(m, "WRITE_MANY", SQLQ_WRITE_MANY) ||
      PyModule_AddIntConstant(m, "SCRIPT", SQLQ_SCRIPT) ||
      PyModule_AddIntConstant(m, "WRITE_FN", SQLQ_WRITE_FN) ||
      PyModule_AddIntConstant(m, "ISOLATED", SQLQ_ISOLATED) ||
      PyModule_AddIntConstant(m, "NO_TRANSACTION", SQLQ_NO_TRANSACTION)) {
    goto fail;
  }
  return m;
fail:
  Py_XDECREF(sqlite3m);
  Py_XDECREF(m);
  return NULL;
}
