// libfuse 3 (Debian's libfuse3-dev), high-level API of version 3.5 (fuse_new, fuse_loop_mt_32).
#define FUSE_USE_VERSION 35
#include <fuse.h>
