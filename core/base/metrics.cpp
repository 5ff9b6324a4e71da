#include "base/metrics.hpp"

#include <charconv>
#include <cmath>

namespace wxrecon {
namespace {

void append_escaped(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out.push_back(c);
    }
}

// The shortest text that reads back as the same double: le="0.005", not "0.0050000000000000001" (a
// bucket's le is matched as text by dashboards and rules).
std::string format_double(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

const std::vector<double> latency_bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  4,     10};

}  // namespace

std::string render_labels(const metrics::labels& l) {
    if (l.empty()) return {};
    std::string out = "{";
    for (std::size_t i = 0; i < l.size(); ++i) {
        if (i) out.push_back(',');
        out += l[i].first;
        out += "=\"";
        append_escaped(out, l[i].second);
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

void metrics::describe(std::string_view name, std::string_view type, std::string_view help) {
    std::lock_guard lock(mutex_);
    auto& f = families_[std::string(name)];
    f.type = type;
    f.help = help;
    if (type == "histogram" && !f.hist) {
        f.hist = std::make_unique<histogram>();
        f.hist->bounds = latency_bounds;
        f.hist->buckets = std::make_unique<std::atomic<std::uint64_t>[]>(latency_bounds.size());
    }
}

void metrics::describe_histogram(std::string_view name, std::string_view help, std::vector<double> bounds) {
    std::lock_guard lock(mutex_);
    auto& f = families_[std::string(name)];
    f.type = "histogram";
    f.help = help;
    f.hist = std::make_unique<histogram>();
    f.hist->buckets = std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size());
    f.hist->bounds = std::move(bounds);
}

metrics::family& metrics::get(std::string_view name) {
    auto it = families_.find(name);
    if (it == families_.end())
        it = families_.emplace(std::string(name), family{"counter", "", {}, {}, {}}).first;
    return it->second;
}

void metrics::add(std::string_view name, const labels& l, std::uint64_t n) {
    const std::string key = render_labels(l);
    std::lock_guard lock(mutex_);
    auto& slot = get(name).counters[key];
    if (!slot) slot = std::make_unique<std::atomic<std::uint64_t>>(0);
    slot->fetch_add(n, std::memory_order_relaxed);
}

void metrics::set(std::string_view name, const labels& l, double value) {
    const std::string key = render_labels(l);
    std::lock_guard lock(mutex_);
    auto& slot = get(name).gauges[key];
    if (!slot) slot = std::make_unique<std::atomic<double>>(0);
    slot->store(value, std::memory_order_relaxed);
}

void metrics::replace(std::string_view name, const std::vector<std::pair<labels, double>>& series) {
    std::lock_guard lock(mutex_);
    auto& gauges = get(name).gauges;
    gauges.clear();
    for (const auto& [l, value] : series)
        gauges[render_labels(l)] = std::make_unique<std::atomic<double>>(value);
}

void metrics::observe(std::string_view name, double value) {
    std::lock_guard lock(mutex_);
    auto& f = get(name);
    if (!f.hist) return;
    auto& h = *f.hist;
    for (std::size_t i = 0; i < h.bounds.size(); ++i)
        if (value <= h.bounds[i]) h.buckets[i].fetch_add(1, std::memory_order_relaxed);
    h.count.fetch_add(1, std::memory_order_relaxed);
    h.sum.store(h.sum.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
}

std::string metrics::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [name, f] : families_) {
        if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
        out += "# TYPE " + name + " " + f.type + "\n";
        for (const auto& [l, v] : f.counters) out += name + l + " " + std::to_string(v->load()) + "\n";
        for (const auto& [l, v] : f.gauges) out += name + l + " " + format_double(v->load()) + "\n";
        if (f.hist) {
            // Buckets are kept cumulative at observe time.
            for (std::size_t i = 0; i < f.hist->bounds.size(); ++i)
                out += name + "_bucket{le=\"" + format_double(f.hist->bounds[i]) + "\"} " +
                       std::to_string(f.hist->buckets[i].load()) + "\n";
            out += name + "_bucket{le=\"+Inf\"} " + std::to_string(f.hist->count.load()) + "\n";
            out += name + "_sum " + format_double(f.hist->sum.load()) + "\n";
            out += name + "_count " + std::to_string(f.hist->count.load()) + "\n";
        }
    }
    return out;
}

std::shared_ptr<metrics> metrics::make_standard() {
    auto m = std::make_shared<metrics>();
    m->describe("wxrecon_notifications_total", "counter", "Notifications received, by API, kind and result.");
    m->describe("wxrecon_internal_errors_total", "counter",
                "Exceptions that escaped a background task (logged), by component.");
    m->describe("wxrecon_signature_probes_total", "counter",
                "WeChat Pay WECHATPAY/SIGNTEST/ signature probes.");
    m->describe("wxrecon_notification_seconds", "histogram",
                "Time from receiving a notification to replying.");
    m->describe("wxrecon_rejected_sampled_total", "counter",
                "Rejected notifications counted but not written, to bound the write rate under a flood.");
    m->describe("wxrecon_queries_total", "counter", "Outbound order queries, by API and result.");
    m->describe("wxrecon_orders", "gauge", "Orders per state.");
    m->describe("wxrecon_stuck_orders", "gauge",
                "Open stuck discrepancies: orders open past expiry or failing to poll.");
    m->describe("wxrecon_prepay_total", "counter", "Orders placed at WeChat Pay, by API and result.");
    m->describe("wxrecon_refunds_total", "counter",
                "Refund requests sent to WeChat Pay, by API and result (accepted, refused, unknown).");
    m->describe("wxrecon_refund_queries_total", "counter",
                "Refund queries sent by the refund tracker, by API and result.");
    m->describe("wxrecon_certificate_refreshes_total", "counter",
                "Platform certificate list downloads, by result.");
    m->describe(
        "wxrecon_key_expiry_timestamp_seconds", "gauge",
        "When a WeChat Pay platform certificate (configured or downloaded) expires, by merchant and serial.");
    m->describe("wxrecon_orders_registered_total", "counter",
                "Orders newly registered through the internal API.");
    m->describe("wxrecon_last_accepted_notification_timestamp_seconds", "gauge",
                "When a notification was last accepted (process start until the first one).");
    m->describe("wxrecon_notification_silence_threshold_seconds", "gauge",
                "alerts.notification_silence: how long without an accepted notification is suspicious.");
    m->describe("wxrecon_webhook_pushes_total", "counter",
                "Discrepancy pushes to alerts.webhook_url, by result.");
    m->describe("wxrecon_webhook_outbox", "gauge", "Discrepancy pushes waiting in the outbox.");
    m->describe("wxrecon_app_events_total", "counter",
                "App event deliveries, by result (delivered, failed).");
    m->describe("wxrecon_app_events_outbox", "gauge", "App events not yet delivered.");
    m->describe_histogram("wxrecon_fact_batch_size", "Facts per committed ledger transaction (group commit).",
                          {1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
    m->describe("wxrecon_app_events_oldest_seconds", "gauge",
                "Age of the oldest app event not yet delivered.");
    m->describe("wxrecon_app_event_delivery_seconds", "histogram",
                "Time from sending an app event to its 2xx.");
    m->describe("wxrecon_event_partition_months_ahead", "gauge",
                "Months after the current one whose payment events have a partition made.");
    m->describe("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    m->describe("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    m->describe("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    m->describe("process_open_fds", "gauge", "Open file descriptors.");
    m->describe("process_max_fds", "gauge", "The limit on open file descriptors.");
    m->describe("process_start_time_seconds", "gauge",
                "Start time of the process since the Unix epoch, in seconds.");
    m->describe("wxrecon_poll_lag_seconds", "gauge", "How overdue the most overdue scheduled query is.");
    m->describe("wxrecon_db_up", "gauge", "1 when PostgreSQL answers, else 0.");
    m->describe("wxrecon_http_requests_total", "counter", "HTTP requests by listener and status.");
    m->describe("wxrecon_build_info", "gauge", "Build information.");
    m->describe("wxrecon_bills_total", "counter", "Bill files fetched from WeChat Pay, by kind and result.");
    m->describe("wxrecon_reconciliation_differences", "gauge", "Unresolved bill discrepancies, by merchant.");
    m->describe("wxrecon_last_reconciled_day_timestamp_seconds", "gauge",
                "Start (Beijing midnight) of the last day reconciled against the bills, by merchant.");
    return m;
}

}  // namespace wxrecon
