// CSV for spreadsheets (RFC 4180): finance opens wxrecond's reports and lists in Excel or LibreOffice.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace wxrecon {

// One field: quoted when it holds a comma, quote, CR or LF (quotes doubled). A field a spreadsheet would
// run as a formula (starting with = + - @, a tab or a CR) gets a leading apostrophe first, so text that
// came from outside (a description, a payer's note) can never execute; numbers are written by the caller
// through csv_number, which is never neutralised.
std::string csv_field(std::string_view text);
// A number as it is (a negative amount keeps its sign).
std::string csv_number(std::string_view digits);
// Fields already made by csv_field / csv_number, joined by commas, ending with CRLF as RFC 4180 says.
std::string csv_line(std::initializer_list<std::string> fields);

}  // namespace wxrecon
