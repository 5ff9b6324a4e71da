#include "crypto/sha1_stream.hpp"

#include <openssl/evp.h>

#include <stdexcept>

#include "base/encoding.hpp"

namespace wxrecon::crypto {

struct sha1_stream::state {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~state() { EVP_MD_CTX_free(ctx); }
};

sha1_stream::sha1_stream() : state_(std::make_unique<state>()) {
    if (state_->ctx == nullptr || EVP_DigestInit_ex(state_->ctx, EVP_sha1(), nullptr) != 1)
        throw std::runtime_error("sha1: OpenSSL could not start a digest");
}

sha1_stream::~sha1_stream() = default;

void sha1_stream::update(std::string_view bytes) {
    if (EVP_DigestUpdate(state_->ctx, bytes.data(), bytes.size()) != 1)
        throw std::runtime_error("sha1: OpenSSL digest update failed");
}

std::string sha1_stream::hex() const {
    // Finishing consumes a context: finish a copy, so more bytes may follow.
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    const bool ok = copy != nullptr && EVP_MD_CTX_copy_ex(copy, state_->ctx) == 1 &&
                    EVP_DigestFinal_ex(copy, out, &size) == 1;
    EVP_MD_CTX_free(copy);
    if (!ok) throw std::runtime_error("sha1: OpenSSL digest failed");
    return hex_lower(std::string_view(reinterpret_cast<const char*>(out), size));
}

}  // namespace wxrecon::crypto
