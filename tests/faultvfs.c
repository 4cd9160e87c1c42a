/*
** faultvfs.c: a fault-injecting VFS for tests, wrapping the real default
** VFS (see faultvfs.h).  Only the counted operations can fail; everything
** else passes through unchanged.  For power loss it keeps an undo record of
** the changes no sync has made durable yet.
*/
#include "faultvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct FvFile FvFile;
struct FvFile {
  sqlite3_file base;    /* Base class: pMethods is fvIo */
  sqlite3_file *pReal;  /* The real file, allocated right after this */
  int bCounted;         /* Main database or WAL: its operations count */
  int bDurable;         /* Database, WAL or journal: power loss matters */
  char *zPath;          /* Its full path (malloc), for power loss */
};

/*
** One unsynced change of a file: its bytes [off, off+n) were aOld (nOld of
** them existed; the file was nSize bytes long before).
*/
typedef struct FvUndo FvUndo;
struct FvUndo {
  char *zPath;         /* The file (malloc) */
  sqlite3_int64 off;   /* Where the change starts */
  sqlite3_int64 nSize; /* The file's size before it */
  int n;               /* Bytes changed */
  unsigned char *aOld; /* What they were (n bytes; beyond nSize: none) */
  FvUndo *pPrev;       /* The change before it */
};

static pthread_mutex_t fvMu = PTHREAD_MUTEX_INITIALIZER; /* For the undo */
static FvUndo *fvLast;     /* The newest unsynced change */
static atomic_int fvRecord; /* Recording for power loss */

static sqlite3_vfs *fvReal;     /* The wrapped VFS */
static atomic_long fvCountdown; /* > 0: the operation reaching 0 fails */
static atomic_int fvMask;       /* Kinds armed */
static atomic_int fvPersist;    /* Keep failing once one failed */
static atomic_int fvFailing;    /* Failing persistently now */
static atomic_int fvInjected;   /* Failures since faultvfs_arm() */
static atomic_int fvFull;       /* Writes fail with SQLITE_FULL */

void faultvfs_arm(long n, int mask, int bPersist) {
  atomic_store(&fvFailing, 0);
  atomic_store(&fvInjected, 0);
  atomic_store(&fvPersist, bPersist);
  atomic_store(&fvMask, mask);
  atomic_store(&fvCountdown, n);
}

void faultvfs_disarm(void) {
  atomic_store(&fvCountdown, 0);
  atomic_store(&fvFailing, 0);
}

int faultvfs_injected(void) {
  return atomic_load(&fvInjected);
}

void faultvfs_write_full(int bFull) {
  atomic_store(&fvFull, bFull);
}

/* True if this operation of kind k on f must fail. */
static int fvFail(FvFile *f, int k) {
  if (!f->bCounted || (atomic_load(&fvMask) & k) == 0) return 0;
  if (atomic_load(&fvFailing)) {
    atomic_fetch_add(&fvInjected, 1);
    return 1;
  }
  if (atomic_load(&fvCountdown) <= 0) return 0;
  if (atomic_fetch_sub(&fvCountdown, 1) != 1) return 0;
  atomic_fetch_add(&fvInjected, 1);
  if (atomic_load(&fvPersist)) atomic_store(&fvFailing, 1);
  return 1;
}

/*
** Remembers bytes [off, off+n) of f as they are now, before a write or a
** truncation changes them.  Out of memory, the change goes unremembered
** (the test then sees a failure it can replay).
*/
static void fvRemember(FvFile *f, sqlite3_int64 off, sqlite3_int64 n) {
  FvUndo *u;
  sqlite3_int64 size = 0;
  if (!atomic_load(&fvRecord) || !f->bDurable || f->zPath == NULL) return;
  if (f->pReal->pMethods->xFileSize(f->pReal, &size) != SQLITE_OK) return;
  u = calloc(1, sizeof(*u));
  if (u == NULL) return;
  u->zPath = strdup(f->zPath);
  u->off = off;
  u->nSize = size;
  u->n = (int)n;
  u->aOld = calloc(1, (size_t)n + 1);
  if (u->zPath == NULL || u->aOld == NULL) {
    free(u->zPath);
    free(u->aOld);
    free(u);
    return;
  }
  if (off < size) {
    sqlite3_int64 nHave = size - off < n ? size - off : n;
    f->pReal->pMethods->xRead(f->pReal, u->aOld, (int)nHave, off);
  }
  pthread_mutex_lock(&fvMu);
  u->pPrev = fvLast;
  fvLast = u;
  pthread_mutex_unlock(&fvMu);
}

/* A sync of f made its changes durable: forgets them. */
static void fvForget(FvFile *f) {
  FvUndo **pp, *u;
  if (f->zPath == NULL) return;
  pthread_mutex_lock(&fvMu);
  for (pp = &fvLast; (u = *pp) != NULL;) {
    if (strcmp(u->zPath, f->zPath) == 0) {
      *pp = u->pPrev;
      free(u->zPath);
      free(u->aOld);
      free(u);
    } else {
      pp = &u->pPrev;
    }
  }
  pthread_mutex_unlock(&fvMu);
}

void faultvfs_record(int bOn) {
  atomic_store(&fvRecord, bOn);
}

int faultvfs_power_cut(int eMode) {
  FvUndo *u;
  int rc = 0, iSector = 0;
  atomic_store(&fvRecord, 0);
  pthread_mutex_lock(&fvMu);
  /* Newest first, so that each file ends as it was at its last sync. */
  while ((u = fvLast) != NULL) {
    fvLast = u->pPrev;
    if (eMode != FAULTVFS_KEEP) {
      int fd = open(u->zPath, O_WRONLY);
      sqlite3_int64 i;
      if (fd < 0) {
        /* A file SQLite deleted since (a WAL at close) has nothing left. */
        if (errno != ENOENT) rc = -1;
      } else {
        for (i = 0; i < u->n; i += 512) {
          sqlite3_int64 n = u->n - i < 512 ? u->n - i : 512;
          if (eMode == FAULTVFS_TEAR && (iSector++ & 1)) continue;
          if (u->off + i < u->nSize) {
            if (u->off + i + n > u->nSize) n = u->nSize - (u->off + i);
            if (pwrite(fd, u->aOld + i, (size_t)n, u->off + i) != n) rc = -1;
          }
        }
        if (eMode == FAULTVFS_DROP && ftruncate(fd, u->nSize) != 0) rc = -1;
        close(fd);
      }
    }
    free(u->zPath);
    free(u->aOld);
    free(u);
  }
  pthread_mutex_unlock(&fvMu);
  return rc;
}

static int fvClose(sqlite3_file *p) {
  FvFile *f = (FvFile *)p;
  int rc = f->pReal->pMethods ? f->pReal->pMethods->xClose(f->pReal) : 0;
  f->pReal->pMethods = NULL;
  free(f->zPath);
  f->zPath = NULL;
  return rc;
}

static int fvRead(sqlite3_file *p, void *a, int n, sqlite3_int64 off) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xRead(f->pReal, a, n, off);
}

static int fvWrite(sqlite3_file *p, const void *a, int n, sqlite3_int64 off) {
  FvFile *f = (FvFile *)p;
  if (fvFail(f, FAULTVFS_WRITE)) {
    return atomic_load(&fvFull) ? SQLITE_FULL : SQLITE_IOERR_WRITE;
  }
  fvRemember(f, off, n);
  return f->pReal->pMethods->xWrite(f->pReal, a, n, off);
}

static int fvTruncate(sqlite3_file *p, sqlite3_int64 size) {
  FvFile *f = (FvFile *)p;
  sqlite3_int64 now = 0;
  if (fvFail(f, FAULTVFS_TRUNCATE)) return SQLITE_IOERR_TRUNCATE;
  if (atomic_load(&fvRecord) &&
      f->pReal->pMethods->xFileSize(f->pReal, &now) == SQLITE_OK &&
      now > size) {
    fvRemember(f, size, now - size);
  }
  return f->pReal->pMethods->xTruncate(f->pReal, size);
}

static int fvSync(sqlite3_file *p, int flags) {
  FvFile *f = (FvFile *)p;
  int rc;
  if (fvFail(f, FAULTVFS_SYNC)) return SQLITE_IOERR_FSYNC;
  rc = f->pReal->pMethods->xSync(f->pReal, flags);
  if (rc == SQLITE_OK) fvForget(f);
  return rc;
}

static int fvFileSize(sqlite3_file *p, sqlite3_int64 *pSize) {
  FvFile *f = (FvFile *)p;
  if (fvFail(f, FAULTVFS_FILESIZE)) return SQLITE_IOERR_FSTAT;
  return f->pReal->pMethods->xFileSize(f->pReal, pSize);
}

static int fvLock(sqlite3_file *p, int e) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xLock(f->pReal, e);
}

static int fvUnlock(sqlite3_file *p, int e) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xUnlock(f->pReal, e);
}

static int fvCheckReservedLock(sqlite3_file *p, int *pOut) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xCheckReservedLock(f->pReal, pOut);
}

static int fvFileControl(sqlite3_file *p, int op, void *pArg) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xFileControl(f->pReal, op, pArg);
}

static int fvSectorSize(sqlite3_file *p) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xSectorSize(f->pReal);
}

static int fvDeviceCharacteristics(sqlite3_file *p) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xDeviceCharacteristics(f->pReal);
}

static int fvShmMap(sqlite3_file *p, int i, int sz, int bExtend,
                    void volatile **pp) {
  FvFile *f = (FvFile *)p;
  if (fvFail(f, FAULTVFS_SHM)) return SQLITE_IOERR_SHMMAP;
  return f->pReal->pMethods->xShmMap(f->pReal, i, sz, bExtend, pp);
}

static int fvShmLock(sqlite3_file *p, int off, int n, int flags) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xShmLock(f->pReal, off, n, flags);
}

static void fvShmBarrier(sqlite3_file *p) {
  FvFile *f = (FvFile *)p;
  f->pReal->pMethods->xShmBarrier(f->pReal);
}

static int fvShmUnmap(sqlite3_file *p, int bDelete) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xShmUnmap(f->pReal, bDelete);
}

static int fvFetch(sqlite3_file *p, sqlite3_int64 off, int n, void **pp) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xFetch(f->pReal, off, n, pp);
}

static int fvUnfetch(sqlite3_file *p, sqlite3_int64 off, void *pPage) {
  FvFile *f = (FvFile *)p;
  return f->pReal->pMethods->xUnfetch(f->pReal, off, pPage);
}

static const sqlite3_io_methods fvIo = {
    3,           fvClose,           fvRead,
    fvWrite,     fvTruncate,        fvSync,
    fvFileSize,  fvLock,            fvUnlock,
    fvCheckReservedLock, fvFileControl, fvSectorSize,
    fvDeviceCharacteristics, fvShmMap, fvShmLock,
    fvShmBarrier, fvShmUnmap,       fvFetch,
    fvUnfetch};

static int fvOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *p,
                  int flags, int *pOutFlags) {
  FvFile *f = (FvFile *)p;
  int rc;
  (void)pVfs;
  memset(f, 0, sizeof(*f));
  f->pReal = (sqlite3_file *)&f[1];
  f->bCounted = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
  f->bDurable = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL |
                          SQLITE_OPEN_MAIN_JOURNAL)) != 0;
  f->zPath = zName ? strdup(zName) : NULL;
  rc = fvReal->xOpen(fvReal, zName, f->pReal, flags, pOutFlags);
  if (rc != SQLITE_OK) {
    free(f->zPath);
    f->zPath = NULL;
  }
  if (f->pReal->pMethods) f->base.pMethods = &fvIo;
  return rc;
}

static int fvDelete(sqlite3_vfs *p, const char *z, int bSync) {
  (void)p;
  return fvReal->xDelete(fvReal, z, bSync);
}

static int fvAccess(sqlite3_vfs *p, const char *z, int flags, int *pOut) {
  (void)p;
  return fvReal->xAccess(fvReal, z, flags, pOut);
}

static int fvFullPathname(sqlite3_vfs *p, const char *z, int n, char *zOut) {
  (void)p;
  return fvReal->xFullPathname(fvReal, z, n, zOut);
}

static void *fvDlOpen(sqlite3_vfs *p, const char *z) {
  (void)p;
  return fvReal->xDlOpen(fvReal, z);
}

static void fvDlError(sqlite3_vfs *p, int n, char *z) {
  (void)p;
  fvReal->xDlError(fvReal, n, z);
}

static void (*fvDlSym(sqlite3_vfs *p, void *h, const char *z))(void) {
  (void)p;
  return fvReal->xDlSym(fvReal, h, z);
}

static void fvDlClose(sqlite3_vfs *p, void *h) {
  (void)p;
  fvReal->xDlClose(fvReal, h);
}

static int fvRandomness(sqlite3_vfs *p, int n, char *z) {
  (void)p;
  return fvReal->xRandomness(fvReal, n, z);
}

static int fvSleep(sqlite3_vfs *p, int us) {
  (void)p;
  return fvReal->xSleep(fvReal, us);
}

static int fvCurrentTime(sqlite3_vfs *p, double *pOut) {
  (void)p;
  return fvReal->xCurrentTime(fvReal, pOut);
}

static int fvGetLastError(sqlite3_vfs *p, int n, char *z) {
  (void)p;
  return fvReal->xGetLastError(fvReal, n, z);
}

static int fvCurrentTimeInt64(sqlite3_vfs *p, sqlite3_int64 *pOut) {
  (void)p;
  return fvReal->xCurrentTimeInt64(fvReal, pOut);
}

static sqlite3_vfs fvVfs = {
    2, 0, 1024, NULL, "faultvfs", NULL, fvOpen, fvDelete, fvAccess,
    fvFullPathname, fvDlOpen, fvDlError, fvDlSym, fvDlClose, fvRandomness,
    fvSleep, fvCurrentTime, fvGetLastError, fvCurrentTimeInt64,
    NULL, NULL, NULL};

int faultvfs_register(void) {
  fvReal = sqlite3_vfs_find(NULL);
  if (fvReal == NULL) return SQLITE_ERROR;
  fvVfs.szOsFile = (int)sizeof(FvFile) + fvReal->szOsFile;
  fvVfs.mxPathname = fvReal->mxPathname;
  return sqlite3_vfs_register(&fvVfs, 1);
}
