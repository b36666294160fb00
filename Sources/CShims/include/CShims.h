#ifndef COFFRE_CSHIMS_H
#define COFFRE_CSHIMS_H
#include <sys/types.h>

/// lseek whence values missing from Swift's Glibc overlay.
extern const int coffre_SEEK_DATA;
extern const int coffre_SEEK_HOLE;
/// open(2) flag missing from Swift's Glibc overlay (needs _GNU_SOURCE).
extern const int coffre_O_DIRECT;

/// syncfs(2): flush every dirty page of the file system holding fd.
int coffre_syncfs(int fd);

/// sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE): start writing the file's dirty pages back
/// without waiting for them.
int coffre_start_writeback(int fd);

/// Returns 1 when the n bytes at p are all zero.
int coffre_is_zero(const void *p, size_t n);

/// flock(2); Swift sees the `struct flock` of fcntl.h under the same name.
int coffre_flock(int fd, int operation);

/// open(2) flag missing from Swift's Glibc overlay (needs _GNU_SOURCE).
extern const int coffre_O_PATH;

/// openat2(2) of `path` under the directory `dirfd` that can never leave it: no `..` above it,
/// no absolute or /proc symbolic links, no crossing into another mount (RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV); O_CLOEXEC added. Fails with EXDEV on an escape.
int coffre_open_beneath(int dirfd, const char *path, int flags);

/// Whether the kernel takes the clock for synchronized (adjtimex(2) does not answer TIME_ERROR):
/// 1 yes, 0 no, -1 when it cannot tell.
int coffre_clock_synchronized(void);

#endif
