// In-process metrics rendered in the Prometheus text format 0.0.4: labelled
// counters, gauges and fixed-bucket histograms. Updates are lock-free on the
// hot path once a label set exists.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace wxrecon {

class metrics {
public:
    // Label values are escaped on output; names are fixed by the code.
    using labels = std::vector<std::pair<std::string, std::string>>;

    void describe(std::string_view name, std::string_view type, std::string_view help);
    // A histogram with its own bucket bounds (ascending); describe() gives the latency ones.
    void describe_histogram(std::string_view name, std::string_view help, std::vector<double> bounds);
    void add(std::string_view name, const labels& l = {}, std::uint64_t n = 1);
    void set(std::string_view name, const labels& l, double value);
    void set(std::string_view name, double value) { set(name, {}, value); }
    void observe(std::string_view name, double value);  // histogram, no labels
    // Replaces every series of a gauge family at once: series not listed any more disappear.
    void replace(std::string_view name, const std::vector<std::pair<labels, double>>& series);

    std::string render() const;

    // The metric families of docs/interfaces.md §6 with their HELP/TYPE lines.
    static std::shared_ptr<metrics> make_standard();

private:
    struct histogram {
        std::vector<double> bounds;
        std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;
        std::atomic<std::uint64_t> count{0};
        std::atomic<double> sum{0};
    };
    struct family {
        std::string type;
        std::string help;
        std::map<std::string, std::unique_ptr<std::atomic<std::uint64_t>>> counters;  // by rendered label set
        std::map<std::string, std::unique_ptr<std::atomic<double>>> gauges;
        std::unique_ptr<histogram> hist;
    };
    family& get(std::string_view name);

    mutable std::mutex mutex_;
    std::map<std::string, family, std::less<>> families_;
};

std::string render_labels(const metrics::labels& l);

}  // namespace wxrecon
