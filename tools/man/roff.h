// A small man(7) writer for the generated pages: escaping and the few macros they use.
#pragma once

#include <string>
#include <string_view>

namespace smtpgov::man {

// Text as roff shows it literally: backslashes escaped, '-' as \- (option names and
// paths must not be hyphenated or turned into dashes), a leading '.' or '\'' guarded.
std::string escape(std::string_view text);

// .TH and NAME: "smtpgovd", 8, "outbound-SMTP abuse governor (daemon)"
std::string title(std::string_view name, int section, std::string_view summary);
std::string section(std::string_view heading);                  // .SH
std::string paragraph(std::string_view text);                   // .PP, escaped text
std::string item(std::string_view tag_roff, std::string_view text);  // .TP: tag (roff) and escaped text
std::string bold(std::string_view text);                        // \fB...\fR, escaped
std::string italic(std::string_view text);                      // \fI...\fR, escaped
std::string example(std::string_view lines);                    // .EX/.EE block, escaped

}  // namespace smtpgov::man
