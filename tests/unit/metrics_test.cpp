// The Prometheus text exposition (format 0.0.4) as wxrecond renders it: types,
// escaped label values, cumulative histogram buckets, and gauge families that
// are replaced whole.
#include <gtest/gtest.h>

#include "base/metrics.hpp"

namespace wxrecon {
namespace {

bool has_line(const std::string& text, const std::string& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(Metrics, LabelValuesAreEscaped) {
    metrics m;
    m.describe("wxrecon_test_total", "counter", "A test counter.");
    m.add("wxrecon_test_total", {{"reason", "a \"quoted\" back\\slash\nnewline"}});
    const std::string text = m.render();
    EXPECT_TRUE(has_line(text, "# TYPE wxrecon_test_total counter")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_total{reason=\"a \\\"quoted\\\" back\\\\slash\\nnewline\"} 1"))
        << text;
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
    metrics m;
    m.describe("wxrecon_test_seconds", "histogram", "A test histogram.");
    for (double v : {0.0005, 0.003, 0.003, 0.2, 30.0}) m.observe("wxrecon_test_seconds", v);
    const std::string text = m.render();
    EXPECT_TRUE(has_line(text, "# TYPE wxrecon_test_seconds histogram")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_seconds_bucket{le=\"0.001\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_seconds_bucket{le=\"0.005\"} 3")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_seconds_bucket{le=\"0.25\"} 4")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_seconds_bucket{le=\"10\"} 4")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_seconds_bucket{le=\"+Inf\"} 5")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_test_seconds_count 5")) << text;
    EXPECT_NE(text.find("wxrecon_test_seconds_sum 30.20"), std::string::npos) << text;
}

TEST(Metrics, AHistogramCanHaveItsOwnBuckets) {
    const auto m = metrics::make_standard();
    for (double v : {1.0, 3.0, 64.0, 64.0, 100.0}) m->observe("wxrecon_fact_batch_size", v);
    const std::string text = m->render();
    EXPECT_TRUE(has_line(text, "# TYPE wxrecon_fact_batch_size histogram")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_bucket{le=\"1\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_bucket{le=\"2\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_bucket{le=\"4\"} 2")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_bucket{le=\"64\"} 4")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_bucket{le=\"128\"} 5")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_bucket{le=\"512\"} 5")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_count 5")) << text;
    EXPECT_TRUE(has_line(text, "wxrecon_fact_batch_size_sum 232")) << text;
}

TEST(Metrics, ReplacedGaugeFamilyKeepsOnlyTheNewSeries) {
    metrics m;
    m.describe("wxrecon_key_expiry_timestamp_seconds", "gauge", "Expiry.");
    m.replace("wxrecon_key_expiry_timestamp_seconds", {{{{"mchid", "1"}, {"serial", "OLD"}}, 100}});
    m.replace("wxrecon_key_expiry_timestamp_seconds", {{{{"mchid", "1"}, {"serial", "NEW"}}, 200}});
    const std::string text = m.render();
    EXPECT_TRUE(has_line(text, "wxrecon_key_expiry_timestamp_seconds{mchid=\"1\",serial=\"NEW\"} 200"))
        << text;
    EXPECT_EQ(text.find("OLD"), std::string::npos) << "a rotated-out certificate disappears";
}

TEST(Metrics, StandardFamiliesHaveTheirTypes) {
    const std::string text = metrics::make_standard()->render();
    for (const char* line :
         {"# TYPE wxrecon_notifications_total counter", "# TYPE wxrecon_signature_probes_total counter",
          "# TYPE wxrecon_notification_seconds histogram", "# TYPE wxrecon_queries_total counter",
          "# TYPE wxrecon_orders gauge", "# TYPE wxrecon_stuck_orders gauge",
          "# TYPE wxrecon_poll_lag_seconds gauge", "# TYPE wxrecon_db_up gauge",
          "# TYPE wxrecon_key_expiry_timestamp_seconds gauge", "# TYPE process_resident_memory_bytes gauge",
          "# TYPE process_cpu_seconds_total counter"})
        EXPECT_TRUE(has_line(text, line)) << line;
}

}  // namespace
}  // namespace wxrecon
