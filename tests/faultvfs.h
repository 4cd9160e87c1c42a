/*
** faultvfs.h: a VFS for tests that wraps the real default one and fails
** chosen I/O operations on demand.  Registered as the default, it sits under
** every connection opened afterwards (sqlq's included).
**
** Counted operations are file writes, syncs, truncations, size reads and
** shared-memory maps of the main database and its WAL.  faultvfs_arm(n,
** mask, bPersist) makes the n-th counted operation (of the kinds in mask)
** fail with the code for its kind (faultvfs_code), and with bPersist every
** one after it too, until faultvfs_disarm().  Thread-safe.
*/
#ifndef FAULTVFS_H
#define FAULTVFS_H

#include <sqlite3.h>

/* Kinds of counted operations. */
#define FAULTVFS_WRITE 0x01
#define FAULTVFS_SYNC 0x02
#define FAULTVFS_TRUNCATE 0x04
#define FAULTVFS_FILESIZE 0x08
#define FAULTVFS_SHM 0x10
#define FAULTVFS_ALL 0x1f

/* Registers the VFS as the default; SQLITE_OK or an SQLite code. */
int faultvfs_register(void);

/* Fails the n-th counted operation of the kinds in mask (see above). */
void faultvfs_arm(long n, int mask, int bPersist);
void faultvfs_disarm(void);

/* Failures injected since the last faultvfs_arm(). */
int faultvfs_injected(void);

/*
** The code a failed write returns: SQLITE_IOERR_WRITE, or SQLITE_FULL if
** bFull; the other kinds fail with SQLITE_IOERR_FSYNC, _TRUNCATE, _FSTAT and
** _SHMMAP.
*/
void faultvfs_write_full(int bFull);

/*
** Power loss.  While recording, every write and truncation of a database,
** WAL or journal file not yet followed by a sync of that file is remembered
** with the bytes it replaced.  faultvfs_power_cut(), called once no
** connection has the files open, makes the files what the power cut would
** leave: FAULTVFS_DROP undoes every unsynced write, FAULTVFS_KEEP keeps
** them all, FAULTVFS_TEAR undoes every other 512-byte sector of them (a
** write torn across sectors).  Returns 0, or -1 if a file could not be
** restored.  Recording stops there, and the record is emptied.
*/
enum { FAULTVFS_DROP, FAULTVFS_KEEP, FAULTVFS_TEAR };
void faultvfs_record(int bOn);
int faultvfs_power_cut(int eMode);

#endif /* FAULTVFS_H */
