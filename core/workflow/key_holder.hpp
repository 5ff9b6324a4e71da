// Key material that SIGHUP can replace while requests are in flight, plus the
// platform certificates downloaded from /v3/certificates. The trusted set is
// always the files plus the latest list WeChat Pay served for each merchant;
// a certificate in neither is no longer trusted.
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
    explicit key_holder(std::shared_ptr<const config::key_store> files)
        : files_(files), keys_(std::move(files)) {}

    std::shared_ptr<const config::key_store> get() const {
        std::lock_guard lock(mutex_);
        return keys_;
    }
    // Replaces the key material loaded from files (SIGHUP). The certificates last downloaded stay until
    // the next download for their merchant replaces them (the caller starts one).
    void set(std::shared_ptr<const config::key_store> files);
    // The list WeChat Pay serves a merchant now (already verified by the caller) replaces the one
    // downloaded before; certificates expired at now_unix are dropped. Returns how many serials are new.
    int replace_downloaded(const std::string& mchid, const std::vector<crypto::certificate>& certs,
                           std::int64_t now_unix);

private:
    void rebuild();  // keys_ = files_ + downloaded_; the caller holds mutex_

    mutable std::mutex mutex_;
    std::shared_ptr<const config::key_store> files_;
    std::shared_ptr<const config::key_store> keys_;
    std::map<std::string, std::vector<crypto::certificate>> downloaded_;  // by mchid
};

}  // namespace wxrecon::workflow
