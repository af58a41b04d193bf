#pragma once
// The argument checks written in the library's sources, found by reading them: so that a test
// can require a rule in its table for every check, and fails when a check is added without one.
#include <string>
#include <vector>

namespace tern::testing {

/// One check in the sources that throws std::invalid_argument "WHERE: TEXT...": a call of
/// fail(where, msg), requirePositive / requireNonNegative / requireInRange / requireSameSize /
/// requireFinite(..., where, field...) (their message as tern/core/error.hpp writes it), or
/// `throw std::invalid_argument("Class::method(): ...")`.
struct SourceRule {
    std::string file;
    int line = 0;
    std::string where;  ///< "AdmmSettings::validate()": a literal, or the string variable of that
                        ///< name declared last before the call (`const char* where = "..."`);
                        ///< empty when neither (e.g. a function parameter)
    std::string text;   ///< the message's literal start after "WHERE: ": "rhoGrowth must be >= 1
                        ///< (got ", "rho must be > 0" for requirePositive(rho, where, "rho");
                        ///< empty when the message does not start with a literal
    std::string call;   ///< the call as written (its first 100 characters)
};

/// The checks in `code` (C++ source text; comments, string and character literals understood).
std::vector<SourceRule> sourceRulesInText(const std::string& code, const std::string& file);

/// The checks in every .cpp and .hpp file under each of `dirs` (recursively), in path order.
std::vector<SourceRule> sourceRules(const std::vector<std::string>& dirs);

/// True for the `where` of a settings validate() or a constructor: "AdmmSettings::validate()",
/// "EarlyStop::EarlyStop()".
bool isValidation(const std::string& where);

}  // namespace tern::testing
