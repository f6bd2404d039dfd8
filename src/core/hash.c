/*
 * hash.c - SipHash-2-4 and the per-process key (see hash.h).
 *
 * The function follows the SipHash paper (Aumasson & Bernstein, "SipHash: a
 * fast short-input PRF", 2012): four 64-bit words of state initialised from
 * the key and the constants "somepseudorandomlygeneratedbytes", two SipRounds
 * per 8-byte message word, the length in the top byte of the last word, four
 * rounds to finalise. The key comes from getrandom(); if the kernel refuses
 * (no getrandom, seccomp), /dev/urandom; if that fails too the process aborts,
 * because a guessable key would bring the attack back silently.
 */
#include "hash.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint64_t pc_siphash24(const pc_hash_key *key, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t v0 = key->k0 ^ 0x736f6d6570736575ull;
    uint64_t v1 = key->k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = key->k0 ^ 0x6c7967656e657261ull;
    uint64_t v3 = key->k1 ^ 0x7465646279746573ull;
    size_t full = n - n % 8;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    for (size_t i = 0; i < n % 8; i++)
        last |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ----------------------------------------------------------- process key -- */

static pc_hash_key process_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* Fills |n| bytes of |out| from the kernel's generator. 0 or -1. */
static int random_bytes(unsigned char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got == n) return 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    got = 0;
    while (got < n) {
        ssize_t r = read(fd, out + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    return got == n ? 0 : -1;
}

static void key_init(void)
{
    unsigned char k[16];
    if (random_bytes(k, sizeof(k))) {
        pc_log(PC_LOG_ERROR, "hash", "no random bytes for the hash key (getrandom, /dev/urandom)");
        abort();
    }
    process_key.k0 = load_le64(k);
    process_key.k1 = load_le64(k + 8);
}

uint64_t pc_hash_seeded(uint64_t seed, const void *p, size_t n)
{
    pthread_once(&key_once, key_init);
    pc_hash_key k = {process_key.k0 ^ seed, process_key.k1};
    return pc_siphash24(&k, p, n);
}
