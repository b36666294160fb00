#define _GNU_SOURCE
#include "CShims.h"
#include <string.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/file.h>
#include <fcntl.h>

const int coffre_SEEK_DATA = SEEK_DATA;
const int coffre_SEEK_HOLE = SEEK_HOLE;
const int coffre_O_DIRECT = O_DIRECT;

int coffre_start_writeback(int fd) { return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); }

int coffre_syncfs(int fd) { return syncfs(fd); }

int coffre_is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    /* check the first 16 bytes, then compare the buffer against itself shifted by 16:
       all-zero iff the prefix is zero and every byte equals the one 16 before it. */
    size_t head = n < 16 ? n : 16;
    for (size_t i = 0; i < head; i++) if (b[i]) return 0;
    if (n <= 16) return 1;
    return memcmp(b, b + 16, n - 16) == 0;
}

int coffre_flock(int fd, int operation) { return flock(fd, operation); }

#include <linux/openat2.h>
#include <sys/syscall.h>

const int coffre_O_PATH = O_PATH;

int coffre_open_beneath(int dirfd, const char *path, int flags) {
    struct open_how how = {
        .flags = (unsigned long long)(unsigned)(flags | O_CLOEXEC),
        .mode = 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

#include <sys/timex.h>

int coffre_clock_synchronized(void) {
    struct timex tx = {0};
    int state = adjtimex(&tx);
    if (state < 0) return -1;
    return state == TIME_ERROR ? 0 : 1;
}
