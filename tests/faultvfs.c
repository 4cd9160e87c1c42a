/*
** faultvfs.c: a fault-injecting VFS for tests, wrapping the real default
** VFS (see faultvfs.h).  Only the counted operations can fail; everything
** else passes through unchanged.
*/
#include "faultvfs.h"

#include <stdatomic.h>
#include <string.h>

typedef struct FvFile FvFile;
struct FvFile {
  sqlite3_file base;    /* Base class: pMethods is fvIo */
  sqlite3_file *pReal;  /* The real file, allocated right after this */
  int bCounted;         /* Main database or WAL: its operations count */
};

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

static int fvClose(sqlite3_file *p) {
  FvFile *f = (FvFile *)p;
  int rc = f->pReal->pMethods ? f->pReal->pMethods->xClose(f->pReal) : 0;
  f->pReal->pMethods = NULL;
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
  return f->pReal->pMethods->xWrite(f->pReal, a, n, off);
}

static int fvTruncate(sqlite3_file *p, sqlite3_int64 size) {
  FvFile *f = (FvFile *)p;
  if (fvFail(f, FAULTVFS_TRUNCATE)) return SQLITE_IOERR_TRUNCATE;
  return f->pReal->pMethods->xTruncate(f->pReal, size);
}

static int fvSync(sqlite3_file *p, int flags) {
  FvFile *f = (FvFile *)p;
  if (fvFail(f, FAULTVFS_SYNC)) return SQLITE_IOERR_FSYNC;
  return f->pReal->pMethods->xSync(f->pReal, flags);
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
  rc = fvReal->xOpen(fvReal, zName, f->pReal, flags, pOutFlags);
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
