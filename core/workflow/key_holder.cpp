#include "workflow/key_holder.hpp"

#include <algorithm>

namespace wxrecon::workflow {

std::shared_ptr<const config::key_store> key_holder::with_downloaded(
    const config::key_store& base,
    const std::map<std::string, std::vector<crypto::certificate>>& downloaded) {
    auto merged = std::make_shared<config::key_store>(base);
    for (const auto& [mchid, certs] : downloaded) {
        const auto it = merged->merchants.find(mchid);
        if (it == merged->merchants.end()) continue;  // the merchant left the configuration
        config::merchant_keys& mk = it->second;
        for (const auto& cert : certs) {
            if (mk.wechatpay_keys.emplace(cert.serial, cert.key).second) mk.platform_certs.push_back(cert);
        }
    }
    return merged;
}

void key_holder::set(std::shared_ptr<const config::key_store> keys) {
    std::lock_guard lock(mutex_);
    keys_ = downloaded_.empty() ? std::move(keys) : with_downloaded(*keys, downloaded_);
}

int key_holder::add_downloaded(const std::string& mchid, const std::vector<crypto::certificate>& certs) {
    std::lock_guard lock(mutex_);
    const config::merchant_keys* current = keys_->find(mchid);
    if (current == nullptr) return 0;
    auto& kept = downloaded_[mchid];
    int added = 0;
    for (const auto& cert : certs) {
        if (current->find_wechatpay_key(cert.serial) != nullptr) continue;
        kept.push_back(cert);
        ++added;
    }
    if (added > 0) keys_ = with_downloaded(*keys_, {{mchid, kept}});
    return added;
}

}  // namespace wxrecon::workflow
