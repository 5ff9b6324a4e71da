#include "workflow/key_holder.hpp"

namespace wxrecon::workflow {

void key_holder::rebuild() {
    if (downloaded_.empty()) {
        keys_ = files_;
        return;
    }
    auto merged = std::make_shared<config::key_store>(*files_);
    for (const auto& [mchid, certs] : downloaded_) {
        const auto it = merged->merchants.find(mchid);
        if (it == merged->merchants.end()) continue;  // the merchant left the configuration
        config::merchant_keys& mk = it->second;
        for (const auto& cert : certs)  // a certificate also in the files is kept as the files have it
            if (mk.wechatpay_keys.emplace(cert.serial, cert.key).second) mk.platform_certs.push_back(cert);
    }
    keys_ = std::move(merged);
}

void key_holder::set(std::shared_ptr<const config::key_store> files) {
    std::lock_guard lock(mutex_);
    files_ = std::move(files);
    rebuild();
}

int key_holder::replace_downloaded(const std::string& mchid, const std::vector<crypto::certificate>& certs,
                                   std::int64_t now_unix) {
    std::lock_guard lock(mutex_);
    const config::merchant_keys* before = keys_->find(mchid);
    if (before == nullptr) return 0;
    std::vector<crypto::certificate> kept;
    int added = 0;
    for (const auto& cert : certs) {
        if (cert.not_after < now_unix) continue;
        kept.push_back(cert);
        if (!before->wechatpay_keys.contains(cert.serial)) ++added;
    }
    downloaded_[mchid] = std::move(kept);
    rebuild();
    return added;
}

}  // namespace wxrecon::workflow
