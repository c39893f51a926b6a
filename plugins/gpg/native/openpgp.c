/*
 * The OpenPGP primitives the gpg plugin runs often, through the OpenSSL inside Node (its EVP
 * symbols are exported to addons):
 *
 * - create/update: AES in OpenPGP's CFB mode (full 16-octet blocks, zero IV, no resync: the SEIPD
 *   v1 packet), written into a buffer the caller owns.
 * - s2kSha256: the iterated and salted S2K with SHA-256 (RFC 4880 3.7.1.3) for a key of at most
 *   32 octets, on libuv's thread pool: the manifest MAC's key is derived while the run archives,
 *   not on the main thread at the commit.
 *
 * Node's cipher.update() returns a new buffer for every call: two allocations (one of them
 * zero-filled) and a copy per call, and memory that is fresh to the process costs a page fault
 * per 4 KiB on virtual machines. For a 64 MiB artifact that is more time than the AES itself.
 * This addon does the same OpenSSL calls into reused memory. Encryption is OpenSSL's CFB-128; decryption is AES-ECB of the
 * previous ciphertext blocks, batched (CFB decryption needs no block before the one it decrypts),
 * XORed with the ciphertext.
 *
 * The plugin works without it (src/native.ts: node:crypto instead); scripts/build-native.mjs
 * compiles it against the running Node's headers.
 */
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 16
#define SCRATCH (64 * 1024)

typedef struct {
  EVP_CIPHER_CTX *ctx;
  int decrypt;
  /* decryption: the last whole ciphertext block (the IV at first), the ciphertext of the
     current incomplete block, its keystream, and how many of its octets are used. */
  uint8_t prev[BLOCK];
  uint8_t cur[BLOCK];
  uint8_t ks[BLOCK];
  int num;
  uint8_t *scratch;
} cfb_state;

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  cfb_state *s = data;
  if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
  free(s->scratch);
  free(s);
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static int bytes_of(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  void *raw;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, &ab, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = raw;
  return 1;
}

/* create(key: Uint8Array (16, 24 or 32 octets), decrypt: boolean) -> handle */
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *key;
  size_t key_length;
  bool decrypt = false;
  if (argc < 2 || !bytes_of(env, argv[0], &key, &key_length)) return fail(env, "create(key, decrypt): key must be a Uint8Array");
  napi_get_value_bool(env, argv[1], &decrypt);
  const EVP_CIPHER *cipher;
  switch (key_length) {
    case 16: cipher = decrypt ? EVP_aes_128_ecb() : EVP_aes_128_cfb128(); break;
    case 24: cipher = decrypt ? EVP_aes_192_ecb() : EVP_aes_192_cfb128(); break;
    case 32: cipher = decrypt ? EVP_aes_256_ecb() : EVP_aes_256_cfb128(); break;
    default: return fail(env, "create: the key must be 16, 24 or 32 octets (AES)");
  }
  cfb_state *s = calloc(1, sizeof *s);
  if (!s) return fail(env, "create: out of memory");
  s->decrypt = decrypt;
  s->ctx = EVP_CIPHER_CTX_new();
  if (decrypt) s->scratch = malloc(SCRATCH);
  uint8_t iv[BLOCK] = {0};
  if (!s->ctx || (decrypt && !s->scratch) || EVP_EncryptInit_ex(s->ctx, cipher, NULL, key, decrypt ? NULL : iv) != 1) {
    finalize(env, s, NULL);
    return fail(env, "create: OpenSSL could not set up AES");
  }
  if (decrypt) EVP_CIPHER_CTX_set_padding(s->ctx, 0);
  napi_value handle;
  if (napi_create_external(env, s, finalize, NULL, &handle) != napi_ok) {
    finalize(env, s, NULL);
    return fail(env, "create: napi_create_external failed");
  }
  return handle;
}

static int ecb(cfb_state *s, uint8_t *out, const uint8_t *in, int length) {
  int written = 0;
  return EVP_EncryptUpdate(s->ctx, out, &written, in, length) == 1 && written == length;
}

static void xor_into(uint8_t *restrict out, const uint8_t *restrict in, size_t length) {
  for (size_t k = 0; k < length; k++) out[k] ^= in[k];
}

/* Decrypts `length` octets of src into dst (dst may be src). */
static int decrypt_into(cfb_state *s, const uint8_t *src, uint8_t *dst, size_t length) {
  size_t i = 0;
  while (s->num && i < length) {
    uint8_t c = src[i];
    dst[i] = c ^ s->ks[s->num];
    s->cur[s->num] = c;
    i++;
    if (++s->num == BLOCK) {
      memcpy(s->prev, s->cur, BLOCK);
      s->num = 0;
    }
  }
  while (length - i >= BLOCK) {
    size_t whole = (length - i) / BLOCK * BLOCK;
    if (whole > SCRATCH) whole = SCRATCH;
    /* keystream of each block = AES(the ciphertext block before it) */
    memcpy(s->scratch, s->prev, BLOCK);
    memcpy(s->scratch + BLOCK, src + i, whole - BLOCK);
    memcpy(s->prev, src + i + whole - BLOCK, BLOCK); /* before dst overwrites it */
    if (!ecb(s, s->scratch, s->scratch, (int)whole)) return 0;
    xor_into(s->scratch, src + i, whole);
    memcpy(dst + i, s->scratch, whole);
    i += whole;
  }
  if (i < length) {
    if (!ecb(s, s->ks, s->prev, BLOCK)) return 0;
    for (; i < length; i++, s->num++) {
      uint8_t c = src[i];
      dst[i] = c ^ s->ks[s->num];
      s->cur[s->num] = c;
    }
  }
  return 1;
}

/* update(handle, src: Uint8Array, dst: Uint8Array of the same length) */
static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  cfb_state *s;
  uint8_t *src, *dst;
  size_t src_length, dst_length;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&s) != napi_ok) return fail(env, "update(handle, src, dst): not a handle");
  if (!bytes_of(env, argv[1], &src, &src_length) || !bytes_of(env, argv[2], &dst, &dst_length)) return fail(env, "update: src and dst must be Uint8Arrays");
  if (src_length != dst_length) return fail(env, "update: src and dst must have the same length");
  if (src != dst && src < dst + dst_length && dst < src + src_length) return fail(env, "update: src and dst overlap");
  int ok;
  if (s->decrypt) {
    ok = decrypt_into(s, src, dst, src_length);
  } else {
    ok = 1;
    for (size_t i = 0; ok && i < src_length;) {
      int n = src_length - i > (1 << 30) ? (1 << 30) : (int)(src_length - i);
      int written = 0;
      ok = EVP_EncryptUpdate(s->ctx, dst + i, &written, src + i, n) == 1 && written == n;
      i += n;
    }
  }
  if (!ok) return fail(env, "update: OpenSSL failed");
  return NULL;
}

/* ---- s2kSha256(data: Uint8Array (salt || passphrase), count: number) -> Promise<Buffer(32)> ---- */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  uint8_t *data;
  size_t length;
  double count;
  uint8_t digest[32];
  int ok;
} s2k_job;

static void s2k_execute(napi_env env, void *hint) {
  (void)env;
  s2k_job *job = hint;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  uint8_t *block = NULL;
  job->ok = 0;
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) goto done;
  /* count octets of data repeated (at least data once), hashed in pieces of ~64 KiB */
  size_t times = job->length >= 65536 ? 1 : 65536 / job->length;
  size_t block_length = job->length * times;
  block = malloc(block_length);
  if (!block) goto done;
  for (size_t i = 0; i < times; i++) memcpy(block + i * job->length, job->data, job->length);
  double left = job->count < (double)job->length ? (double)job->length : job->count;
  while (left >= (double)block_length) {
    if (EVP_DigestUpdate(md, block, block_length) != 1) goto done;
    left -= (double)block_length;
  }
  if (left > 0 && EVP_DigestUpdate(md, block, (size_t)left) != 1) goto done;
  unsigned int out = 0;
  job->ok = EVP_DigestFinal_ex(md, job->digest, &out) == 1 && out == 32;
done:
  free(block);
  if (md) EVP_MD_CTX_free(md);
}

static void s2k_complete(napi_env env, napi_status status, void *hint) {
  s2k_job *job = hint;
  napi_value result;
  if (status == napi_ok && job->ok) {
    void *copy;
    napi_create_buffer_copy(env, 32, job->digest, &copy, &result);
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    napi_value message;
    napi_create_string_utf8(env, "s2kSha256: OpenSSL failed", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &result);
    napi_reject_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  OPENSSL_cleanse(job->data, job->length);
  OPENSSL_cleanse(job->digest, sizeof job->digest);
  free(job->data);
  free(job);
}

static napi_value s2k_sha256(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *data;
  size_t length;
  double count;
  if (argc < 2 || !bytes_of(env, argv[0], &data, &length) || length == 0) return fail(env, "s2kSha256(data, count): data must be a non-empty Uint8Array");
  if (napi_get_value_double(env, argv[1], &count) != napi_ok || !(count >= 0) || count > 1e12) return fail(env, "s2kSha256: count must be a number of octets");
  s2k_job *job = calloc(1, sizeof *job);
  if (!job || !(job->data = malloc(length))) {
    free(job);
    return fail(env, "s2kSha256: out of memory");
  }
  /* A copy: the caller may reuse its buffer while the work runs. */
  memcpy(job->data, data, length);
  job->length = length;
  job->count = count;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "sutazai-s2k", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, s2k_execute, s2k_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
    {"update", NULL, update, NULL, NULL, NULL, napi_default, NULL},
    {"s2kSha256", NULL, s2k_sha256, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}
