// Key material that SIGHUP can replace while requests are in flight, plus the
// platform certificates downloaded from /v3/certificates, which outlive a
// reload (the files on disk do not hold them).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/key_material.hpp"
#include "crypto/crypto.hpp"

namespace wxrecon::workflow {

class key_holder {
public:
    explicit key_holder(std::shared_ptr<const config::key_store> keys) : keys_(std::move(keys)) {}

    std::shared_ptr<const config::key_store> get() const {
        std::lock_guard lock(mutex_);
        return keys_;
    }
    // Replaces the key material loaded from files; downloaded certificates are added back.
    void set(std::shared_ptr<const config::key_store> keys);
    // Trusts certificates downloaded for a merchant (already verified by the caller). Returns how many
    // serials were new.
    int add_downloaded(const std::string& mchid, const std::vector<crypto::certificate>& certs);

private:
    static std::shared_ptr<const config::key_store> with_downloaded(
        const config::key_store& base,
        const std::map<std::string, std::vector<crypto::certificate>>& downloaded);

    mutable std::mutex mutex_;
    std::shared_ptr<const config::key_store> keys_;
    std::map<std::string, std::vector<crypto::certificate>> downloaded_;  // by mchid
};

}  // namespace wxrecon::workflow
