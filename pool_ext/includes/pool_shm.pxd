# Mirrors src/pool_shm.h (SharedBufferPool's segment).
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "pool_shm.h" nogil:
    bint POOL_SHM_SUPPORTED
    uint32_t POOL_SHM_HEADER
    uint32_t POOL_SHM_MAX_CAPACITY
    uint32_t POOL_SHM_VERSION
    unsigned POOL_SHM_FREE, POOL_SHM_HELD, POOL_SHM_TRANSIT
    int POOL_SHM_ESMALL, POOL_SHM_EMAGIC, POOL_SHM_EVERSION, POOL_SHM_ELAYOUT, POOL_SHM_ETRUNC

    ctypedef struct pool_shm_header_t:
        uint8_t id[16]
        uint8_t name_key[20]
        uint32_t wake
        uint32_t waiters
        uint32_t hint
        uint64_t handouts
        uint64_t releases
        uint64_t reclaimed
        uint32_t named

    ctypedef struct pool_shm_layout_t:
        char *base
        pool_shm_header_t *header
        uint64_t *words
        char *blocks
        uint32_t capacity
        uint64_t block_size
        uint64_t alignment
        uint64_t stride
        uint64_t blocks_offset
        uint64_t total_size

    int pool_shm_plan(pool_shm_layout_t *l, uint64_t block_size, uint32_t capacity,
                      uint64_t alignment, uint64_t page)
    void pool_shm_init(pool_shm_layout_t *l, char *base, const uint8_t *id,
                       const uint8_t *name_key)
    int pool_shm_check_header(pool_shm_layout_t *l, char *base, uint64_t size, uint64_t page)

    uint64_t pool_shm_held_word(uint32_t pid, uint32_t tag)
    uint64_t pool_shm_transit_word(uint64_t ticket)
    uint64_t pool_shm_ticket(uint64_t key, uint64_t n)
    unsigned pool_shm_kind(uint64_t w)
    uint32_t pool_shm_word_pid(uint64_t w)
    uint32_t pool_shm_word_tag(uint64_t w)
    uint64_t pool_shm_load(const pool_shm_layout_t *l, uint32_t i)
    bint pool_shm_swap(const pool_shm_layout_t *l, uint32_t i, uint64_t frm, uint64_t to)
    int64_t pool_shm_take(const pool_shm_layout_t *l, uint64_t me)
    void pool_shm_freed(const pool_shm_layout_t *l, uint32_t i)
    int pool_shm_give(const pool_shm_layout_t *l, uint32_t i, uint64_t me)
    uint32_t pool_shm_wake_seq(const pool_shm_layout_t *l)
    void pool_shm_waiters_add(const pool_shm_layout_t *l, int32_t d)
    void pool_shm_will_sleep(const pool_shm_layout_t *l)
    bint pool_shm_hungry(const pool_shm_layout_t *l)
    uint64_t pool_shm_hungry_until(const pool_shm_layout_t *l)
    void pool_shm_set_hungry(const pool_shm_layout_t *l, uint64_t until)
    void pool_shm_clear_hungry(const pool_shm_layout_t *l, uint64_t until)
    int pool_shm_sleep(const pool_shm_layout_t *l, uint32_t seq, int64_t timeout_ns)

    int pool_shm_os_create(const char *label, uint64_t size)
    int pool_shm_os_open(int pid, int fd, uint64_t *size)
    char *pool_shm_os_map(int fd, uint64_t size, uint64_t align)
    void pool_shm_os_unmap(char *base, uint64_t size)
    void pool_shm_os_close(int fd)
    int pool_shm_os_name_bind(const char *name)
    void pool_shm_os_name_close(int fd)
    void pool_shm_os_forget_names() noexcept nogil
    long pool_shm_os_getpid()
    int pool_shm_os_atfork(void (*child)() noexcept nogil)
