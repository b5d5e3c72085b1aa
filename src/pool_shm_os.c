/* pool_shm_os.c - SharedBufferPool's dealings with the kernel: the segment's
 * memfd, mapping it, opening another process's, and the pool's name (an
 * abstract Unix socket).  Linux only; elsewhere every call fails with
 * ENOSYS.  The design is in pool_shm.h. */
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS, MAP_ANONYMOUS */
#include "pool_shm.h"
#include "pool_atomic.h"

#include <errno.h>

#if defined(__linux__)
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

int pool_shm_os_create(const char *label, uint64_t size)
{
    char name[256];
    int fd, err;
    snprintf(name, sizeof name, "pool_ext:%s", label);
    fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    /* a memfd is reachable only through /proc/<pid>/fd, which the kernel
     * lets only this user (ptrace rules) open; 0600 says it twice */
    if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
        err = errno;
        goto fail;
    }
    err = posix_fallocate(fd, 0, (off_t)size); /* returns the error */
    if (err != 0)
        goto fail;
    if (fcntl(fd, F_ADD_SEALS, SEALS) < 0) {
        err = errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -err;
}

int pool_shm_os_open(int pid, int fd, uint64_t *size)
{
    char path[64];
    struct stat st;
    int seg, seals, err;
    snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
    /* a locator may name any fd of that process (a tty, a FIFO, a device):
     * open only regular files, and without side effects if it changes
     * between the stat and the open (no blocking, no controlling tty) */
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    seg = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (seg < 0)
        return -errno;
    if (fstat(seg, &st) < 0) {
        err = errno;
        goto fail;
    }
    if (st.st_uid != geteuid()) {
        err = EACCES; /* another user's segment */
        goto fail;
    }
    seals = fcntl(seg, F_GET_SEALS);
    if (!S_ISREG(st.st_mode) || seals < 0
        || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
        err = EINVAL; /* not a sealed memfd: not one of ours */
        goto fail;
    }
    *size = (uint64_t)st.st_size;
    return seg;
fail:
    close(seg);
    return -err;
}

char *pool_shm_os_map(int fd, uint64_t size, uint64_t align)
{
    /* mmap gives page alignment; for more, reserve size + align of address
     * space, map the segment over its aligned part, and return the rest */
    size_t page = (size_t)sysconf(_SC_PAGESIZE), extra = align > page ? (size_t)align : 0;
    char *r, *p;
    if (extra == 0) {
        void *q = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        return q == MAP_FAILED ? NULL : (char *)q;
    }
    if ((size_t)size > SIZE_MAX - extra)
        return NULL;
    r = mmap(NULL, (size_t)size + extra, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
    if (r == MAP_FAILED)
        return NULL;
    p = (char *)(((uintptr_t)r + extra - 1) & ~(uintptr_t)(extra - 1));
    if (mmap(p, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
        == MAP_FAILED) {
        munmap(r, (size_t)size + extra);
        return NULL;
    }
    if (p > r)
        munmap(r, (size_t)(p - r));
    if (r + size + extra > p + size)
        munmap(p + size, (size_t)((r + size + extra) - (p + size)));
    return p;
}

void pool_shm_os_unmap(char *base, uint64_t size) { munmap(base, (size_t)size); }

void pool_shm_os_close(int fd) { close(fd); }

/* The name sockets this process bound (fd + 1; 0: an empty entry), so that
 * a fork child closes them all (pool_shm_os_forget_names), whether Python's
 * at-fork hooks run or not: a child must never keep its parent's name.
 * Entries [0, name_top) are in use or free; static (no allocation, nothing
 * a fork could catch half-made), 256 KiB of zero pages of which only the
 * used part is ever touched.  Changed under the extension's registry lock,
 * one thread at a time; read in a fork child, where only the forking
 * thread runs.
 *
 * name_lock makes a socket's life and its entry change together as far as
 * fork() can see: held from socket() to its listing and bind(), and from
 * its unlisting to its close(), and taken by pthread_atfork's prepare
 * handler.  The kernel copies the fd table at fork, so without it a fork in
 * another thread (libc's, which runs none of Python's hooks and does not
 * wait for the registry lock) could copy a socket that is bound but not
 * listed yet, or unlisted but not closed yet: the child would keep the
 * name for its whole life.  Never held across anything that waits. */
#define NAME_FDS 65536 /* two per pool: 32,768 pools alive in one process */
static uint32_t name_fds[NAME_FDS];
static uint32_t name_top;
static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;

static int name_keep(int fd)
{
    /* relaxed: the registry lock orders the writers */
    uint32_t i, top = pool_load32(&name_top, POOL_RELAXED);
    for (i = 0; i < top; i++) {
        /* relaxed: as above */
        if (pool_load32(&name_fds[i], POOL_RELAXED) == 0)
            break;
    }
    if (i == NAME_FDS)
        return -EOVERFLOW; /* the caller says what it means */
    /* relaxed: as above; a fork child reads it in the forking thread */
    pool_store32(&name_fds[i], (uint32_t)fd + 1, POOL_RELAXED);
    if (i == top)
        pool_store32(&name_top, top + 1, POOL_RELAXED); /* relaxed: as above */
    return 0;
}

static void name_close_locked(int fd)
{
    /* relaxed: the registry lock orders the writers */
    uint32_t i, top = pool_load32(&name_top, POOL_RELAXED);
    for (i = 0; i < top; i++) {
        /* relaxed: the registry lock orders the writers */
        if (pool_load32(&name_fds[i], POOL_RELAXED) == (uint32_t)fd + 1) {
            /* relaxed: as above */
            pool_store32(&name_fds[i], 0, POOL_RELAXED);
            close(fd);
            return;
        }
    }
}

void pool_shm_os_name_close(int fd)
{
    pthread_mutex_lock(&name_lock);
    name_close_locked(fd);
    pthread_mutex_unlock(&name_lock);
}

void pool_shm_os_forget_names(void)
{
    /* relaxed: only this thread runs (a fork child) */
    uint32_t i, top = pool_load32(&name_top, POOL_RELAXED);
    for (i = 0; i < top; i++) {
        /* relaxed: only this thread runs (a fork child) */
        uint32_t v = pool_load32(&name_fds[i], POOL_RELAXED);
        if (v != 0) {
            close((int)(v - 1));
            /* relaxed: as above */
            pool_store32(&name_fds[i], 0, POOL_RELAXED);
        }
    }
    pool_store32(&name_top, 0, POOL_RELAXED); /* relaxed: as above */
}

static socklen_t name_address(struct sockaddr_un *a, const char *name)
{
    int n;
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* abstract: sun_path[0] is NUL; the name is the bytes after it */
    n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "pool_ext/%u/%s", (unsigned)geteuid(),
                 name);
    if (n < 0 || (size_t)n >= sizeof a->sun_path - 1)
        return 0;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int pool_shm_os_name_bind(const char *name)
{
    struct sockaddr_un a;
    socklen_t len = name_address(&a, name);
    int s, err;
    if (len == 0)
        return -ENAMETOOLONG;
    pthread_mutex_lock(&name_lock);
    /* bound, never connected to: a datagram socket that nobody reads;
     * listed before it is bound */
    s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        s = -errno;
    } else if ((err = name_keep(s)) < 0) {
        close(s);
        s = err;
    } else if (bind(s, (struct sockaddr *)&a, len) < 0) {
        err = -errno;
        name_close_locked(s);
        s = err;
    }
    pthread_mutex_unlock(&name_lock);
    return s;
}

long pool_shm_os_getpid(void) { return (long)getpid(); }

static void (*fork_child)(void);

static void name_prepare(void) { pthread_mutex_lock(&name_lock); }

static void name_parent(void) { pthread_mutex_unlock(&name_lock); }

static void name_child(void)
{
    /* the forking thread took it in name_prepare: it is this thread now */
    pthread_mutex_unlock(&name_lock);
    if (fork_child != NULL)
        fork_child();
}

int pool_shm_os_atfork(void (*child)(void))
{
    static int registered; /* once: a second prepare would lock name_lock twice */
    fork_child = child;
    if (registered)
        return 0;
    registered = 1;
    return -pthread_atfork(name_prepare, name_parent, name_child);
}

#else /* not Linux */

int pool_shm_os_create(const char *label, uint64_t size)
{
    (void)label;
    (void)size;
    return -ENOSYS;
}
int pool_shm_os_open(int pid, int fd, uint64_t *size)
{
    (void)pid;
    (void)fd;
    (void)size;
    return -ENOSYS;
}
char *pool_shm_os_map(int fd, uint64_t size, uint64_t align)
{
    (void)align;
    (void)fd;
    (void)size;
    errno = ENOSYS;
    return 0;
}
void pool_shm_os_unmap(char *base, uint64_t size)
{
    (void)base;
    (void)size;
}
void pool_shm_os_close(int fd) { (void)fd; }
void pool_shm_os_name_close(int fd) { (void)fd; }
void pool_shm_os_forget_names(void) {}
int pool_shm_os_name_bind(const char *name)
{
    (void)name;
    return -ENOSYS;
}
long pool_shm_os_getpid(void) { return 0; }
int pool_shm_os_atfork(void (*child)(void))
{
    (void)child;
    return -ENOSYS;
}

#endif
