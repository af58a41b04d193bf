// The argument checks written in the library's sources (source_rules.hpp).
#include "testing/source_rules.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

namespace tern::testing {

namespace {

bool isIdent(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

/// Skips the string or character literal starting at code[i] (a quote); returns the index after it.
std::size_t skipLiteral(const std::string& code, std::size_t i) {
    const char q = code[i];
    for (++i; i < code.size() && code[i] != q; ++i)
        if (code[i] == '\\') ++i;
    return i + 1;
}

/// `code` with comments blanked (newlines kept, so that offsets and lines stay).
std::string stripComments(const std::string& code) {
    std::string out = code;
    for (std::size_t i = 0; i < out.size();) {
        const char c = out[i];
        if (c == '"' || (c == '\'' && (i == 0 || !isIdent(out[i - 1])))) {  // 1'000 is a number
            i = skipLiteral(out, i);
        } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '/') {
            for (; i < out.size() && out[i] != '\n'; ++i) out[i] = ' ';
        } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '*') {
            const std::size_t end = std::min(out.size(), out.find("*/", i + 2) + 2);
            for (; i < end; ++i)
                if (out[i] != '\n') out[i] = ' ';
        } else {
            ++i;
        }
    }
    return out;
}

/// The arguments of the call whose '(' is at code[open], split at top-level commas and trimmed.
std::vector<std::string> callArguments(const std::string& code, std::size_t open) {
    std::vector<std::string> args;
    int depth = 0;
    std::size_t start = open + 1;
    auto push = [&](std::size_t end) {
        std::string a = code.substr(start, end - start);
        const auto b = a.find_first_not_of(" \t\r\n");
        a = b == std::string::npos ? "" : a.substr(b, a.find_last_not_of(" \t\r\n") - b + 1);
        args.push_back(a);
    };
    for (std::size_t i = open; i < code.size();) {
        const char c = code[i];
        if (c == '"' || (c == '\'' && !isIdent(code[i - 1]))) {
            i = skipLiteral(code, i);
            continue;
        }
        if (c == '(' || c == '[' || c == '{') ++depth;
        if (c == ')' || c == ']' || c == '}') {
            if (--depth == 0) {
                push(i);
                return args;
            }
        }
        if (c == ',' && depth == 1) {
            push(i);
            start = i + 1;
        }
        ++i;
    }
    return args;  // unbalanced: what there is
}

/// The value of the string literal(s) at the start of `arg` ("a" "b" joins), after an optional
/// TERN_MSG( or std::string(; false when `arg` does not start with one.
bool leadingLiteral(std::string arg, std::string& value) {
    for (const std::string wrap : {"TERN_MSG(", "std::string("})
        if (arg.rfind(wrap, 0) == 0) arg = arg.substr(wrap.size());
    std::size_t i = arg.find_first_not_of(" \t\r\n");
    if (i == std::string::npos || arg[i] != '"') return false;
    value.clear();
    while (i < arg.size() && arg[i] == '"') {
        for (++i; i < arg.size() && arg[i] != '"'; ++i) {
            if (arg[i] == '\\' && i + 1 < arg.size()) {
                const char e = arg[++i];
                value += e == 'n' ? '\n' : e == 't' ? '\t' : e;
            } else {
                value += arg[i];
            }
        }
        i = arg.find_first_not_of(" \t\r\n", i + 1);
        if (i == std::string::npos) break;
    }
    return true;
}

/// The literal value of `where` at offset `pos`: a literal, or the last `const char* NAME =
/// "..."` / `const std::string NAME = "..."` before pos.
bool resolveWhere(const std::string& code, std::size_t pos, const std::string& arg,
                  std::string& where) {
    if (leadingLiteral(arg, where)) return true;
    if (arg.empty() || !std::all_of(arg.begin(), arg.end(), isIdent)) return false;
    const std::regex decl("const\\s+(char\\s*\\*|std::string)\\s*" + arg + "\\s*=\\s*\"([^\"]*)\"");
    bool found = false;
    for (auto it = std::sregex_iterator(code.begin(), code.begin() + static_cast<long>(pos), decl);
         it != std::sregex_iterator(); ++it) {
        where = (*it)[2];
        found = true;
    }
    return found;
}

/// Per checking function: the index of its `where` argument, of its field argument (-1: the
/// message argument follows `where`), and the text its message has after the field.
struct Checker {
    int whereArg, fieldArg;
    const char* after;
};

const std::map<std::string, Checker> kCheckers{
    {"fail", {0, -1, ""}},
    {"requirePositive", {1, 2, " must be > 0"}},
    {"requireNonNegative", {1, 2, " must be >= 0"}},
    {"requireInRange", {3, 4, " must be in ["}},
    {"requireSameSize", {2, 3, " has "}},
    {"requireFinite", {1, 2, " has a non-finite entry"}},
};

}  // namespace

std::vector<SourceRule> sourceRulesInText(const std::string& text, const std::string& file) {
    const std::string code = stripComments(text);
    std::vector<SourceRule> out;
    const std::regex call(
        "(fail|requirePositive|requireNonNegative|requireInRange|requireSameSize|requireFinite|"
        "throw\\s+std::invalid_argument)\\s*\\(");
    for (auto it = std::sregex_iterator(code.begin(), code.end(), call);
         it != std::sregex_iterator(); ++it) {
        const auto pos = static_cast<std::size_t>(it->position());
        // not a member (rng.fail()), not part of a longer name, not inside a literal
        if (pos > 0 && (isIdent(code[pos - 1]) || code[pos - 1] == '.' || code[pos - 1] == '>'))
            continue;
        bool inLiteral = false;
        for (std::size_t i = 0; i < pos;) {
            const char c = code[i];
            if (c == '"' || (c == '\'' && i > 0 && !isIdent(code[i - 1]))) {
                const std::size_t end = skipLiteral(code, i);
                if (end > pos) inLiteral = true;
                i = end;
            } else {
                ++i;
            }
        }
        if (inLiteral) continue;
        const std::size_t open = pos + static_cast<std::size_t>(it->length()) - 1;
        const std::vector<std::string> args = callArguments(code, open);
        SourceRule r;
        r.file = file;
        r.line = 1 + static_cast<int>(
                         std::count(code.begin(), code.begin() + static_cast<long>(pos), '\n'));
        const std::string name = (*it)[1];
        r.call = code.substr(pos, std::min<std::size_t>(100, code.size() - pos));
        if (name.rfind("throw", 0) == 0) {
            std::string msg;
            const auto colon = args.empty() || !leadingLiteral(args[0], msg) ? std::string::npos
                                                                             : msg.find("(): ");
            if (colon != std::string::npos) {
                r.where = msg.substr(0, colon + 2);
                r.text = msg.substr(colon + 4);
            }
        } else {
            const Checker& c = kCheckers.at(name);
            const auto msgArg =
                static_cast<std::size_t>(c.fieldArg < 0 ? c.whereArg + 1 : c.fieldArg);
            if (args.size() > msgArg) {
                if (!resolveWhere(code, pos, args[static_cast<std::size_t>(c.whereArg)], r.where))
                    r.where.clear();
                if (leadingLiteral(args[msgArg], r.text))
                    r.text += c.after;
                else
                    r.text.clear();
            }
        }
        out.push_back(r);
    }
    return out;
}

std::vector<SourceRule> sourceRules(const std::vector<std::string>& dirs) {
    std::vector<std::filesystem::path> files;
    for (const std::string& d : dirs)
        for (const auto& e : std::filesystem::recursive_directory_iterator(d))
            if (e.is_regular_file() &&
                (e.path().extension() == ".cpp" || e.path().extension() == ".hpp"))
                files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::vector<SourceRule> out;
    for (const auto& f : files) {
        std::ifstream in(f);
        std::stringstream text;
        text << in.rdbuf();
        for (SourceRule& r : sourceRulesInText(text.str(), f.string())) out.push_back(std::move(r));
    }
    return out;
}

bool isValidation(const std::string& where) {
    static const std::regex re("(\\w+)::(validate|\\1)\\(\\)");
    return std::regex_match(where, re);
}

}  // namespace tern::testing
