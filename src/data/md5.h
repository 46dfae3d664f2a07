/* md5.h: MD5 (RFC 1321), used only to verify the integrity of downloaded archives (not for security). */
#ifndef HS_MD5_H
#define HS_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[4];
    uint64_t length;     /* bytes hashed so far */
    uint8_t buffer[64];  /* pending partial block */
} Md5;

void md5_init(Md5 *ctx);
void md5_update(Md5 *ctx, const void *data, size_t len);
/* Finishes the hash; ctx must be re-initialised before reuse. */
void md5_final(Md5 *ctx, uint8_t digest[16]);
/* Lower-case hex of a digest (32 characters + NUL). */
void md5_hex(const uint8_t digest[16], char hex[33]);
/* MD5 of a whole buffer as lower-case hex. */
void md5_buffer_hex(const void *data, size_t len, char hex[33]);
/* MD5 of a file's contents as lower-case hex; 0, or -1 with hs_error (file cannot be opened or read). */
int md5_file_hex(const char *path, char hex[33]);

#endif
