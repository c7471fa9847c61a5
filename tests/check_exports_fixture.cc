// A shared library exporting what evsse's must not (built with default
// visibility): exported_symbols_refused checks that tests/check_exports.py
// reports both names and fails.
namespace evsse {
namespace internal {
int NotTheApi() { return 1; }
}  // namespace internal
int UndeclaredHelper() { return 2; }
}  // namespace evsse
