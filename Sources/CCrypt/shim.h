#ifndef CCRYPT_SHIM_H
#define CCRYPT_SHIM_H

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

/// Checks `password` against a crypt(3) hash such as bcrypt's `$2y$10$...` with the re-entrant
/// `crypt_r`. `struct crypt_data` is about 32 KiB, too big for a Swift stack value, so it is
/// allocated here. Returns 1 on a match, 0 on a mismatch, -1 when the hash is not usable.
/// The comparison runs over the whole string, whatever differs.
static inline int ccrypt_verify(const char *password, const char *hash)
{
    struct crypt_data *data = calloc(1, sizeof(struct crypt_data));
    if (data == NULL) return -1;
    const char *out = crypt_r(password, hash, data);
    int result;
    if (out == NULL || out[0] == '*') {
        result = -1;
    } else {
        size_t a = strlen(out), b = strlen(hash);
        unsigned char diff = (unsigned char)(a != b);
        for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(out[i] ^ hash[i]);
        result = diff == 0;
    }
    explicit_bzero(data, sizeof(struct crypt_data));
    free(data);
    return result;
}

#endif
