#include "domain_xml.h"

#include <algorithm>
#include <cctype>
#include <memory>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "core/ascii.h"

namespace smtpgov::hv {
namespace {

using XmlDoc = std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)>;

bool is(const xmlNode* n, const char* name) {
    return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, reinterpret_cast<const xmlChar*>(name)) == 0;
}

const xmlNode* child(const xmlNode* parent, const char* name) {
    for (const xmlNode* n = parent->children; n; n = n->next)
        if (is(n, name)) return n;
    return nullptr;
}

std::string text(const xmlNode* n) {
    if (!n) return {};
    xmlChar* t = xmlNodeGetContent(n);
    std::string s = t ? reinterpret_cast<const char*>(t) : "";
    xmlFree(t);
    auto ws = [](unsigned char c) { return std::isspace(c) != 0; };
    s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), ws));
    s.erase(std::find_if_not(s.rbegin(), s.rend(), ws).base(), s.end());
    return s;
}

std::string attr(const xmlNode* n, const char* name) {
    if (!n) return {};
    xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
    std::string s = v ? reinterpret_cast<const char*>(v) : "";
    xmlFree(v);
    return s;
}

std::vector<Nic> nics_of(const xmlNode* devices) {
    std::vector<Nic> out;
    if (!devices) return out;
    for (const xmlNode* n = devices->children; n; n = n->next) {
        if (!is(n, "interface")) continue;
        Nic nic{attr(child(n, "target"), "dev"), ascii_lower(attr(child(n, "mac"), "address"))};
        if (!nic.dev.empty()) out.push_back(std::move(nic));
    }
    return out;
}

}  // namespace

Result<Domain> parse_domain_xml(std::string_view xml) {
    // no network access, no entity expansion, no DTD loading: the XML comes from a hook's stdin
    XmlDoc doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domain.xml", nullptr,
                             XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
               xmlFreeDoc);
    if (!doc) return Error::msg("domain XML: not well-formed XML");
    const xmlNode* root = xmlDocGetRootElement(doc.get());
    if (!root || !is(root, "domain")) return Error::msg("domain XML: the root element is not <domain>");
    Domain d{text(child(root, "name")), ascii_lower(text(child(root, "uuid"))), nics_of(child(root, "devices"))};
    if (d.name.empty()) return Error::msg("domain XML: no <name>");
    if (d.uuid.size() != 36) return Error::msg("domain XML: no <uuid> of 36 characters");
    return d;
}

}  // namespace smtpgov::hv
