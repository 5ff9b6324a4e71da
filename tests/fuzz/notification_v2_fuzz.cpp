// libFuzzer target for APIv2: the XML of a notification or answer (DTDs and entities refused, limits
// held), the fields read from it, its signature, and the encrypted req_info of a refund notification. The
// first input byte picks the reader. Whatever the bytes: no crash, no hang; a document written from parsed
// fields parses back to the same fields; req_info decrypts back to what was encrypted.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "protocol/v2.hpp"

namespace {

using namespace wxrecon;
namespace v2 = protocol::v2;

constexpr std::string_view api_key = "192006250b4c09247ec02edce69f6a2d";

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz: %s\n", what);
    std::abort();
}

void document(std::string_view data) {
    const auto f = v2::parse_xml(data);
    if (!f) return;
    (void)v2::verify(*f, api_key);
    (void)v2::read_payment(*f);
    (void)v2::read_refund_query(*f, v2::field(*f, "out_refund_no"));
    (void)v2::to_json(*f);
    (void)v2::parse_fen(v2::field(*f, "total_fee"));
    (void)v2::parse_beijing_time(v2::field(*f, "time_end"));
    const auto again = v2::parse_xml(v2::to_xml(*f));
    if (!again) fail("written XML does not parse");
    if (*again != *f) fail("written XML parses to other fields");
    // Signed here, it verifies; one value changed, it does not.
    auto signed_fields = *f;
    signed_fields.erase("sign");
    signed_fields.erase("sign_type");
    signed_fields["sign"] = v2::sign(signed_fields, api_key, v2::sign_type::md5);
    if (!v2::verify(signed_fields, api_key)) fail("a genuine MD5 signature does not verify");
}

void req_info(std::string_view data) {
    (void)v2::decrypt_req_info(data, api_key);
    const auto back = v2::decrypt_req_info(v2::encrypt_req_info(data, api_key), api_key);
    if (!back || *back != data) fail("req_info does not decrypt to what was encrypted");
    (void)v2::parse_xml(data, "root");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    if (bytes[0] % 2 == 0)
        document(data);
    else
        req_info(data);
    return 0;
}
