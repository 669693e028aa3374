#pragma once
// OpenSSL 3 marks the low-level digest functions deprecated in favour of EVP; authd uses
// SHA256_Init/Update/Final on a stack context for session secrets because EVP (and OpenSSL 3's
// one-shot SHA256(), which goes through EVP_Q_digest) fetch the algorithm on every call.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static inline void authd_sha256(const void *data, size_t length, unsigned char digest[32]) {
    SHA256_CTX context;
    SHA256_Init(&context);
    SHA256_Update(&context, data, length);
    SHA256_Final(digest, &context);
}
