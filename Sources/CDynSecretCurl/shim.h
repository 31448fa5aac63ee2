// Wrappers for the parts of libcurl that Swift cannot import directly.
#ifndef CDYNSECRET_CURL_SHIM_H
#define CDYNSECRET_CURL_SHIM_H

#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic: Swift needs one typed wrapper per argument type.
static inline CURLcode cdynsecret_curl_setopt_long(CURL *curl, CURLoption option, long value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode cdynsecret_curl_setopt_string(CURL *curl, CURLoption option, const char *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode cdynsecret_curl_setopt_pointer(CURL *curl, CURLoption option, void *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode cdynsecret_curl_setopt_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(curl, option, value);
}

static inline CURLcode cdynsecret_curl_setopt_offset(CURL *curl, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(curl, option, value);
}

typedef size_t (*cdynsecret_curl_write_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode cdynsecret_curl_setopt_write_function(CURL *curl, CURLoption option, cdynsecret_curl_write_callback value) {
    return curl_easy_setopt(curl, option, value);
}

typedef int (*cdynsecret_curl_xferinfo_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode cdynsecret_curl_setopt_xferinfo_function(CURL *curl, cdynsecret_curl_xferinfo_callback value) {
    return curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, value);
}

static inline CURLcode cdynsecret_curl_getinfo_long(CURL *curl, CURLINFO info, long *value) {
    return curl_easy_getinfo(curl, info, value);
}

static inline CURLcode cdynsecret_curl_getinfo_double(CURL *curl, CURLINFO info, double *value) {
    return curl_easy_getinfo(curl, info, value);
}

static inline CURLcode cdynsecret_curl_getinfo_string(CURL *curl, CURLINFO info, char **value) {
    return curl_easy_getinfo(curl, info, value);
}

// Blob options (CA bundle, client certificate and key given as bytes); curl copies the bytes.
static inline CURLcode cdynsecret_curl_setopt_blob(CURL *curl, CURLoption option, const void *data, size_t length) {
    struct curl_blob blob;
    blob.data = (void *)data;
    blob.len = length;
    blob.flags = CURL_BLOB_COPY;
    return curl_easy_setopt(curl, option, &blob);
}

static inline CURLcode cdynsecret_curl_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT);
}

static inline long cdynsecret_curl_http_version_2tls(void) { return CURL_HTTP_VERSION_2TLS; }

// CURLVERSION_NOW is a macro.
static inline curl_version_info_data *cdynsecret_curl_version_info(void) {
    return curl_version_info(CURLVERSION_NOW);
}

// The multi interface: one thread drives every transfer of a transport.
static inline CURLMcode cdynsecret_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

// The next finished transfer of `multi`: its easy handle and result. Returns 0 when none is left.
static inline int cdynsecret_curl_multi_next_done(CURLM *multi, CURL **easy, CURLcode *result) {
    int left = 0;
    CURLMsg *message;
    while ((message = curl_multi_info_read(multi, &left)) != NULL) {
        if (message->msg == CURLMSG_DONE) {
            *easy = message->easy_handle;
            *result = message->data.result;
            return 1;
        }
    }
    return 0;
}

#endif
