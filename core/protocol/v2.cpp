#include "protocol/v2.hpp"

#include <array>
#include <charconv>
#include <pugixml.hpp>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"

namespace wxrecon::protocol::v2 {

namespace {

bool starts_with_at(std::string_view text, std::size_t pos, std::string_view prefix) {
    return text.substr(pos, prefix.size()) == prefix;
}

bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// The only entity references pugixml is allowed to expand: the five predefined ones and numeric
// character references. Anything else would need a DTD to mean something.
bool is_allowed_reference(std::string_view text, std::size_t amp) {
    static constexpr std::array<std::string_view, 5> predefined = {"&lt;", "&gt;", "&amp;", "&apos;",
                                                                   "&quot;"};
    for (std::string_view name : predefined) {
        if (starts_with_at(text, amp, name)) return true;
    }
    std::size_t pos = amp + 1;
    if (pos >= text.size() || text[pos] != '#') return false;
    ++pos;
    const bool hex = pos < text.size() && text[pos] == 'x';
    if (hex) ++pos;
    const std::size_t digits_start = pos;
    std::uint32_t code_point = 0;
    while (pos < text.size() && pos - digits_start < 8) {
        const char c = text[pos];
        std::uint32_t digit;
        if (c >= '0' && c <= '9') {
            digit = static_cast<std::uint32_t>(c - '0');
        } else if (hex && c >= 'a' && c <= 'f') {
            digit = static_cast<std::uint32_t>(c - 'a' + 10);
        } else if (hex && c >= 'A' && c <= 'F') {
            digit = static_cast<std::uint32_t>(c - 'A' + 10);
        } else {
            break;
        }
        code_point = code_point * (hex ? 16 : 10) + digit;
        ++pos;
    }
    // &#0; would end the value early inside pugixml; surrogates and values past U+10FFFF are not
    // characters at all. None of them can appear in a legitimate message.
    const bool is_char =
        code_point != 0 && code_point <= 0x10ffff && (code_point < 0xd800 || code_point > 0xdfff);
    return pos > digits_start && pos < text.size() && text[pos] == ';' && is_char;
}

// Lexical screen run before pugixml sees the bytes: pugixml silently skips a DOCTYPE (and so would
// accept a billion-laughs or XXE payload while ignoring its declarations); we want such input refused
// loudly. Inside CDATA sections and comments '&' and '<!' are plain text, so those are skipped.
status screen_xml(std::string_view xml) {
    std::size_t pos = 0;
    while (pos < xml.size()) {
        const std::size_t next = xml.find_first_of("<&", pos);
        if (next == std::string_view::npos) break;
        if (xml[next] == '&') {
            if (!is_allowed_reference(xml, next)) {
                return make_error(errc::forbidden_xml,
                                  "XML entity reference other than the five predefined ones");
            }
            pos = next + 1;
            continue;
        }
        if (starts_with_at(xml, next, "<![CDATA[")) {
            const std::size_t end = xml.find("]]>", next + 9);
            if (end == std::string_view::npos) {
                return make_error(errc::parse_error, "unterminated CDATA section");
            }
            pos = end + 3;
            continue;
        }
        if (starts_with_at(xml, next, "<!--")) {
            const std::size_t end = xml.find("-->", next + 4);
            if (end == std::string_view::npos) {
                return make_error(errc::parse_error, "unterminated XML comment");
            }
            pos = end + 3;
            continue;
        }
        if (starts_with_at(xml, next, "<!")) {
            // <!DOCTYPE, <!ENTITY, <!ELEMENT, <!ATTLIST, <!NOTATION in any case or spacing: all DTD syntax.
            return make_error(errc::forbidden_xml,
                              "XML document type / entity declarations are not accepted");
        }
        if (starts_with_at(xml, next, "<?")) {
            // Only the XML declaration itself; other processing instructions have no place in a message.
            const std::size_t end = xml.find("?>", next + 2);
            if (end == std::string_view::npos) {
                return make_error(errc::parse_error, "unterminated processing instruction");
            }
            const std::string_view target = xml.substr(next + 2, 4);
            if (!(target.size() == 4 && target.substr(0, 3) == "xml" && is_ascii_space(target[3]))) {
                return make_error(errc::parse_error, "XML processing instructions are not accepted");
            }
            pos = end + 2;
            continue;
        }
        pos = next + 1;
    }
    return ok;
}

// Text of a leaf element: all its PCDATA / CDATA pieces joined (a value with "]]>" arrives as
// several CDATA sections).
result<std::string> leaf_text(const pugi::xml_node& element) {
    std::string value;
    for (const pugi::xml_node& child : element.children()) {
        if (child.type() != pugi::node_pcdata && child.type() != pugi::node_cdata) {
            return make_error(errc::parse_error,
                              "element <" + std::string(element.name()) + "> is not a flat field");
        }
        value += child.value();
    }
    return value;
}

std::string sign_string(const fields& f, std::string_view api_key) {
    std::string text;
    for (const auto& [name, value] : f) {
        if (name == "sign" || value.empty()) continue;
        text.append(name).append("=").append(value).append("&");
    }
    text.append("key=").append(api_key);
    return text;
}

std::string ascii_upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return out;
}

}  // namespace

result<fields> parse_xml(std::string_view xml, std::string_view root, std::size_t max_bytes) {
    if (xml.size() > max_bytes) {
        return make_error(errc::invalid_argument, "XML document of " + std::to_string(xml.size()) +
                                                      " bytes exceeds the limit of " +
                                                      std::to_string(max_bytes));
    }
    if (auto screened = screen_xml(xml); !screened) return screened.err();

    pugi::xml_document doc;
    // parse_default: elements, PCDATA, CDATA, the predefined escapes; no DOCTYPE, PI or comment nodes.
    // parse_fragment keeps text outside the root as nodes (instead of dropping it) so it can be refused.
    const pugi::xml_parse_result parsed = doc.load_buffer(
        xml.data(), xml.size(), pugi::parse_default | pugi::parse_fragment, pugi::encoding_utf8);
    if (!parsed) {
        return make_error(errc::parse_error, std::string("XML does not parse: ") + parsed.description() +
                                                 " at offset " + std::to_string(parsed.offset));
    }

    pugi::xml_node root_node;
    for (const pugi::xml_node& node : doc.children()) {
        if (node.type() != pugi::node_element) {
            return make_error(errc::parse_error, "text outside the root element");
        }
        if (root_node) return make_error(errc::parse_error, "more than one root element");
        root_node = node;
    }
    if (!root_node) return make_error(errc::parse_error, "XML has no root element");
    if (root != root_node.name()) {
        return make_error(errc::parse_error, "root element is <" + std::string(root_node.name()) +
                                                 ">, expected <" + std::string(root) + ">");
    }
    if (root_node.first_attribute()) return make_error(errc::parse_error, "attributes are not accepted");

    fields out;
    for (const pugi::xml_node& child : root_node.children()) {
        if (child.type() != pugi::node_element) {
            return make_error(errc::parse_error, "text directly inside <" + std::string(root) + ">");
        }
        if (child.first_attribute()) return make_error(errc::parse_error, "attributes are not accepted");
        auto value = leaf_text(child);
        if (!value) return value.err();
        // A repeated field would make "which value was signed" ambiguous.
        if (!out.emplace(child.name(), std::move(*value)).second) {
            return make_error(errc::parse_error, "field <" + std::string(child.name()) + "> appears twice");
        }
    }
    return out;
}

std::string to_xml(const fields& f) {
    std::string xml = "<xml>";
    for (const auto& [name, value] : f) {
        xml.append("<").append(name).append("><![CDATA[");
        for (std::size_t i = 0; i < value.size(); ++i) {
            if (value[i] == '\r') {
                // A raw CR would be read back as LF (XML's end-of-line handling); a reference stays CR.
                xml.append("]]>&#13;<![CDATA[");
            } else if (value.compare(i, 3, "]]>") == 0) {
                // "]]>" cannot appear inside CDATA: close the section after "]]" and reopen it before ">".
                xml.append("]]]]><![CDATA[>");
                i += 2;
            } else {
                xml.push_back(value[i]);
            }
        }
        xml.append("]]></").append(name).append(">");
    }
    xml.append("</xml>");
    return xml;
}

std::string sign(const fields& f, std::string_view api_key, sign_type type) {
    const std::string text = sign_string(f, api_key);
    if (type == sign_type::md5) return hex_upper(crypto::md5(text));
    return hex_upper(crypto::hmac_sha256(api_key, text));
}

bool verify(const fields& f, std::string_view api_key) {
    const auto sign_it = f.find("sign");
    if (sign_it == f.end() || sign_it->second.empty()) return false;
    const std::string received = ascii_upper(sign_it->second);

    sign_type type = sign_type::md5;
    if (const auto type_it = f.find("sign_type"); type_it != f.end()) {
        if (type_it->second == "MD5") {
            type = sign_type::md5;
        } else if (type_it->second == "HMAC-SHA256") {
            type = sign_type::hmac_sha256;
        } else {
            return false;
        }
    } else if (received.size() == 32) {
        type = sign_type::md5;
    } else if (received.size() == 64) {
        type = sign_type::hmac_sha256;
    } else {
        return false;
    }
    return constant_time_equal(sign(f, api_key, type), received);
}

result<std::string> decrypt_req_info(std::string_view req_info_base64, std::string_view api_key) {
    const auto ciphertext = base64_decode(req_info_base64);
    if (!ciphertext) return make_error(errc::decrypt_failed, "req_info is not valid Base64");
    auto plain = crypto::aes256_ecb_decrypt(hex_lower(crypto::md5(api_key)), *ciphertext);
    if (!plain) return make_error(errc::decrypt_failed, "req_info: " + plain.err().message);
    return std::move(*plain);
}

std::string encrypt_req_info(std::string_view inner_xml, std::string_view api_key) {
    // The key is always 32 hex characters, so encryption cannot fail on its arguments.
    auto ciphertext = crypto::aes256_ecb_encrypt(hex_lower(crypto::md5(api_key)), inner_xml);
    return ciphertext ? base64_encode(*ciphertext) : std::string{};
}

result<std::int64_t> parse_beijing_time(std::string_view text) {
    auto digits = [&](std::size_t pos, std::size_t count) -> int {
        int value = 0;
        for (std::size_t i = pos; i < pos + count; ++i) {
            if (text[i] < '0' || text[i] > '9') return -1;
            value = value * 10 + (text[i] - '0');
        }
        return value;
    };
    int year, month, day, hour, minute, second;
    if (text.size() == 14) {  // yyyyMMddHHmmss
        year = digits(0, 4), month = digits(4, 2), day = digits(6, 2);
        hour = digits(8, 2), minute = digits(10, 2), second = digits(12, 2);
    } else if (text.size() == 19 && text[4] == '-' && text[7] == '-' && text[10] == ' ' && text[13] == ':' &&
               text[16] == ':') {  // yyyy-MM-dd HH:mm:ss
        year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
        hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
    } else {
        return make_error(errc::invalid_argument, "invalid Beijing time \"" +
                                                      std::string(text.substr(0, 32)) +
                                                      "\": expected yyyyMMddHHmmss or yyyy-MM-dd HH:mm:ss");
    }
    const auto utc_fields = civil_to_unix(year, month, day, hour, minute, second);
    if (!utc_fields) {
        return make_error(errc::invalid_argument,
                          "invalid Beijing time \"" + std::string(text) + "\": not a real date and time");
    }
    return *utc_fields - beijing_offset_seconds;
}

std::optional<std::int64_t> parse_fen(std::string_view text) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v < 0) return std::nullopt;
    return v;
}

std::string field(const fields& f, std::string_view name) {
    const auto it = f.find(name);
    return it == f.end() ? std::string() : it->second;
}

std::string to_json(const fields& f) {
    json_object o;
    for (const auto& [k, v] : f)
        if (k != "sign") o.add(k, v);
    return o.str();
}

result<domain::payment_fact> read_payment(const fields& f) {
    domain::payment_fact p;
    p.out_trade_no = field(f, "out_trade_no");
    if (p.out_trade_no.empty()) return make_error(errc::parse_error, "out_trade_no missing");
    const std::string state = field(f, "trade_state");
    if (state.empty()) {
        p.state = domain::trade_state::success;  // notifications are sent for payments only
    } else {
        const auto parsed = domain::parse_trade_state(state);
        if (!parsed) return make_error(errc::parse_error, "unknown trade_state " + state);
        p.state = *parsed;
    }
    p.state_desc = field(f, "trade_state_desc");
    p.transaction_id = field(f, "transaction_id");
    p.appid = field(f, "appid");
    p.trade_type = field(f, "trade_type");
    p.bank_type = field(f, "bank_type");
    p.payer_openid = field(f, "openid");
    p.currency = field(f, "fee_type");
    if (const std::string total = field(f, "total_fee"); !total.empty()) {
        p.amount_total = parse_fen(total);
        if (!p.amount_total)
            return make_error(errc::parse_error, "total_fee is not a number of fen: " + total);
    }
    const std::string cash_fee = field(f, "cash_fee");
    p.payer_total = cash_fee.empty() ? p.amount_total : parse_fen(cash_fee);
    if (!cash_fee.empty() && !p.payer_total)
        return make_error(errc::parse_error, "cash_fee is not a number of fen: " + cash_fee);
    if (const std::string time_end = field(f, "time_end"); !time_end.empty()) {
        const auto t = parse_beijing_time(time_end);
        if (!t) return make_error(errc::parse_error, "time_end is not yyyyMMddHHmmss: " + time_end);
        p.success_time = *t * 1'000'000;
    }
    const bool paid = p.state == domain::trade_state::success || p.state == domain::trade_state::refund;
    if (paid && (p.transaction_id.empty() || !p.amount_total || !p.payer_total || !p.success_time))
        return make_error(errc::parse_error, "a paid order needs transaction_id, total_fee and time_end");
    return p;
}

std::string format_beijing_time(std::int64_t unix_seconds) {
    const std::string rfc = format_rfc3339(unix_seconds, 480);  // "2018-06-08T10:34:56+08:00"
    std::string compact;
    for (const char c : rfc.substr(0, 19))
        if (c >= '0' && c <= '9') compact += c;
    return compact;
}

result<domain::refund_fact> read_refund_query(const fields& f, std::string_view out_refund_no) {
    const auto count = parse_fen(field(f, "refund_count"));  // a non-negative integer, like an amount
    if (!count || *count > 50)
        return make_error(errc::parse_error, "refundquery answer has no usable refund_count");
    for (std::int64_t n = 0; n < *count; ++n) {
        const std::string suffix = "_" + std::to_string(n);
        if (field(f, "out_refund_no" + suffix) != out_refund_no) continue;
        domain::refund_fact r;
        r.out_refund_no = std::string(out_refund_no);
        r.out_trade_no = field(f, "out_trade_no");
        r.transaction_id = field(f, "transaction_id");
        r.refund_id = field(f, "refund_id" + suffix);
        const std::string status = field(f, "refund_status" + suffix);
        if (status == "SUCCESS")
            r.status = domain::refund_status::success;
        else if (status == "PROCESSING")
            r.status = domain::refund_status::processing;
        else if (status == "REFUNDCLOSE")
            r.status = domain::refund_status::closed;
        else if (status == "CHANGE")
            r.status = domain::refund_status::abnormal;
        else
            return make_error(errc::parse_error,
                              "refund_status" + suffix + " \"" + status.substr(0, 32) +
                                  "\" is none of SUCCESS, PROCESSING, REFUNDCLOSE, CHANGE");
        const auto fee = parse_fen(field(f, "refund_fee" + suffix));
        r.amount_total = parse_fen(field(f, "total_fee"));
        if (r.out_trade_no.empty() || r.refund_id.empty() || !fee || !r.amount_total)
            return make_error(errc::parse_error, "refundquery answer lacks out_trade_no, refund_id" + suffix +
                                                     ", refund_fee" + suffix + " or total_fee");
        r.amount_refund = *fee;
        if (const std::string t = field(f, "refund_success_time" + suffix); !t.empty()) {
            const auto at = parse_beijing_time(t);
            if (!at)
                return make_error(errc::parse_error,
                                  "refund_success_time" + suffix + ": " + at.err().message);
            r.success_time = *at * 1'000'000;
        } else if (r.status == domain::refund_status::success) {
            return make_error(errc::parse_error,
                              "refund_success_time" + suffix + " missing for a SUCCESS refund");
        }
        return r;
    }
    return make_error(errc::parse_error,
                      "refundquery answer lists no refund " + std::string(out_refund_no.substr(0, 64)));
}

}  // namespace wxrecon::protocol::v2
