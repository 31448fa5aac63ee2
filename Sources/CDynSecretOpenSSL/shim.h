// Wrappers for the parts of OpenSSL 3 that Swift cannot import directly.
#ifndef CDYNSECRET_OPENSSL_SHIM_H
#define CDYNSECRET_OPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bn.h>

// OPENSSL_free is a function-like macro (it passes file and line).
static inline void cdynsecret_openssl_free(void *ptr) {
    OPENSSL_free(ptr);
}

// OPENSSL_VERSION_NUMBER is a macro whose value Swift cannot see.
static inline unsigned long cdynsecret_openssl_header_version(void) {
    return (unsigned long)OPENSSL_VERSION_NUMBER;
}

#endif
