#include "roff.h"

namespace smtpgov::man {

std::string escape(std::string_view text) {
    std::string out;
    bool line_start = true;
    for (char c : text) {
        if (line_start && (c == '.' || c == '\'')) out += "\\&";
        if (c == '\\') out += "\\e";
        else if (c == '-') out += "\\-";
        else out += c;
        line_start = c == '\n';
    }
    return out;
}

std::string title(std::string_view name, int section_number, std::string_view summary) {
    std::string upper(name);
    for (char& c : upper)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return ".TH " + escape(upper) + " " + std::to_string(section_number) + " \"\" \"smtpgov " SMTPGOV_VERSION
           "\" \"System Administration\"\n.SH NAME\n" + escape(name) + " \\- " + escape(summary) + "\n";
}

std::string section(std::string_view heading) { return ".SH " + escape(heading) + "\n"; }

std::string paragraph(std::string_view text) { return ".PP\n" + escape(text) + "\n"; }

std::string item(std::string_view tag_roff, std::string_view text) {
    return ".TP\n" + std::string(tag_roff) + "\n" + escape(text) + "\n";
}

std::string bold(std::string_view text) { return "\\fB" + escape(text) + "\\fR"; }

std::string italic(std::string_view text) { return "\\fI" + escape(text) + "\\fR"; }

std::string example(std::string_view lines) { return ".PP\n.EX\n" + escape(lines) + "\n.EE\n"; }

}  // namespace smtpgov::man
